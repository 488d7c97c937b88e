//! The one integration-test binary: one module per area (ripgrep's layout).

mod suite;
