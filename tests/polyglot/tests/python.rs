//! Python guests (the examples and the store-ops test guest), built with
//! componentize-py, through the real host: the guest suite, every case on
//! both backends.

wf_tests::guest_suite!(wf_polyglot_tests::PYTHON);
