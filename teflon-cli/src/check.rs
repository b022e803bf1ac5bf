//! `teflon check`: validate a policy file.

use std::io::Write;
use std::path::Path;

use teflon_core::PolicySet;

use crate::Exit;

/// Parse `path`; print one summary line per policy to `out`, or every error as
/// `FILE:LINE:COL: message` to `err`.
pub fn run(path: &Path, out: &mut impl Write, err: &mut impl Write) -> std::io::Result<Exit> {
    let Some(policies) = load(path, err)? else {
        return Ok(Exit::Failure);
    };
    for p in policies.policies() {
        writeln!(out, "{}", p.summary())?;
    }
    Ok(Exit::Ok)
}

/// Read and compile a policy file, reporting problems to `err`; `None` when it is unusable.
pub fn load(path: &Path, err: &mut impl Write) -> std::io::Result<Option<PolicySet>> {
    let name = path.display().to_string();
    let source = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            writeln!(err, "{name}: cannot read the policy file: {e}")?;
            return Ok(None);
        }
    };
    match PolicySet::parse(&source, &name) {
        Ok(p) => Ok(Some(p)),
        Err(errors) => {
            for e in errors.iter() {
                writeln!(err, "{e}")?;
            }
            Ok(None)
        }
    }
}
