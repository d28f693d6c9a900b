//! Paths of the wasm32-wasip2 guest components built from this workspace by
//! the build script; tests run exactly the guests built from the current source.
#![deny(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
