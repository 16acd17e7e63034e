//! Entry points for fuzzing the service's parsers (the cargo-fuzz targets in `fuzz/` call
//! them): the policy file. Only a panic is a finding.

/// Text as a policy file, a grant and a condition of every object.
pub fn policy_file(text: &str) {
    crate::policy_file::exercise_parsers(text);
}
