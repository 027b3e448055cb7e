//! Leak reports in plain words.

use std::fmt;
use std::panic::Location;

use super::kind::GuardKind;

/// Guards of one kind minted at one site and still outstanding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeakSite {
    /// What kind of guard.
    pub kind: GuardKind,
    /// Where they were minted; `None` when this build does not record sites.
    pub location: Option<&'static Location<'static>>,
    /// How many are outstanding.
    pub count: usize,
}

impl fmt::Display for LeakSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.count, self.kind.noun(self.count))?;
        if let Some(at) = self.location {
            write!(f, " minted at {}:{}", at.file(), at.line())?;
        }
        let verb = if self.count == 1 { "was" } else { "were" };
        write!(f, " {verb} never released")?;
        if self.location.is_none() {
            f.write_str(" (build with debug assertions or the `leak-check` feature to see where)")?;
        }
        Ok(())
    }
}

/// What a [`Ledger`](crate::Ledger) still holds: one [`LeakSite`] per kind and mint site.
///
/// Displays one line per site, or "no guard is outstanding".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeakReport {
    sites: Vec<LeakSite>,
}

impl LeakReport {
    pub(crate) fn new(mut sites: Vec<LeakSite>) -> Self {
        sites.sort_by_key(|s| (s.kind, s.location.map(|l| (l.file(), l.line(), l.column()))));
        LeakReport { sites }
    }

    /// The outstanding guards, by kind then site.
    pub fn sites(&self) -> &[LeakSite] {
        &self.sites
    }

    /// Whether nothing is outstanding.
    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    /// How many guards are outstanding in all.
    pub fn total(&self) -> usize {
        self.sites.iter().map(|s| s.count).sum()
    }
}

impl fmt::Display for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sites.is_empty() {
            return f.write_str("no guard is outstanding");
        }
        for (i, site) in self.sites.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{site}")?;
        }
        Ok(())
    }
}
