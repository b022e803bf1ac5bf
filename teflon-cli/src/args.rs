//! Argument parsers shared by the subcommands (`cli.rs` and the commands' own argument
//! structs), below all of them.

/// A `--…-secs` value: a finite, non-negative number of seconds (`nan`, `inf` and negative
/// numbers are refused by clap with a usage error, never a panic further on).
pub fn seconds(value: &str) -> Result<f64, String> {
    let secs: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("{value:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!(
            "{value:?} is not a number of seconds (finite, 0 or more)"
        ));
    }
    Ok(secs)
}
