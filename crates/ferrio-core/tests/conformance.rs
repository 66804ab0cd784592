//! The adapter conformance suite against the memory adapter (one node).

ferrio_core::adapter_conformance!(ferrio_core::testing::Memory);
