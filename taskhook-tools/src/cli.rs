//! The command-line flags of the tools: each program declares its flags
//! once, in a table of [`Flag`]s, parsed by [`parse_flags`] (`--flag VALUE`
//! or `--flag=VALUE`) and described by [`usage`] (`--help`).

/// One command-line flag: its name, the name of its value, its help, and
/// how its value sets the config `C`.
#[allow(missing_debug_implementations)]
pub struct Flag<C> {
    /// The flag, with its dashes: `--listen`.
    pub name: &'static str,
    /// The name of its value in the help: `ADDR`.
    pub value: &'static str,
    /// One line of help, with the default in brackets.
    pub help: &'static str,
    /// Sets the value in the config, or says why it cannot.
    pub set: fn(&mut C, &str) -> Result<(), String>,
}

/// A whole number.
pub fn parse_number(value: &str) -> Result<u64, String> {
    value
        .parse()
        .map_err(|e| format!("not a whole number: {e}"))
}

/// A whole number, at least 1.
pub fn parse_positive(value: &str) -> Result<u64, String> {
    match parse_number(value)? {
        0 => Err("must be at least 1".to_owned()),
        n => Ok(n),
    }
}

/// A probability, `0..=1`.
pub fn parse_probability(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err("not a probability between 0 and 1".to_owned()),
    }
}

/// Parses `--flag VALUE` and `--flag=VALUE` arguments into a default `C`:
/// `Ok(None)` for `--help` or `-h`.
pub fn parse_flags<C, I>(flags: &[Flag<C>], args: I) -> Result<Option<C>, String>
where
    C: Default,
    I: IntoIterator<Item = String>,
{
    let mut config = C::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(None);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let flag = flags
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| format!("unknown argument {arg:?} (see --help)"))?;
        let value = match inline {
            Some(value) => value,
            None => args
                .next()
                .ok_or_else(|| format!("{name} needs a value {}", flag.value))?,
        };
        (flag.set)(&mut config, &value).map_err(|e| format!("{name} {value:?}: {e}"))?;
    }
    Ok(Some(config))
}

/// The usage text of a program taking `flags`.
pub fn usage<C>(about: &str, program: &str, flags: &[Flag<C>]) -> String {
    let mut text = format!("{about}\n\nusage: {program} [FLAGS]\n\nflags:\n");
    for flag in flags {
        let left = format!("{} {}", flag.name, flag.value);
        text.push_str(&format!("  {left:<24} {}\n", flag.help));
    }
    text.push_str(&format!("  {:<24} print this help\n", "--help"));
    text
}
