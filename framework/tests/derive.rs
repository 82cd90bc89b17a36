//! Compile-fail tests of `#[derive(Plugin)]`: every misuse is an error on the offending
//! tokens, with the message in the `.stderr` file beside each case.

#[test]
fn misuse_of_the_derive_is_a_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/derive/*.rs");
}
