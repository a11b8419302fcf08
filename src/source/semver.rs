//! Semver ranges as Flux writes them (Masterminds semver) and tags read as versions the
//! lenient way Flux reads them. One reading for every source that selects a tag by range: a
//! GitRepository's `ref.semver`, an OCIRepository's `ref.semver` (with `semverFilter`).

use semver::{Version, VersionReq};

/// A range that cannot be read, with the range and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid semver range {range:?}: {reason}")]
pub struct InvalidRange {
    pub range: String,
    pub reason: String,
}

/// A parsed range: any of its `||` alternatives matches.
#[derive(Debug, Clone)]
pub struct Range {
    alternatives: Vec<VersionReq>,
}

impl Range {
    /// Parses a range as Flux (Masterminds semver) writes it: `||` alternatives; comparators
    /// separated by spaces or commas; `a - b` ranges; a bare version means exactly that
    /// version; versions may carry a leading `v`.
    ///
    /// # Errors
    /// [`InvalidRange`] naming the range: empty, an operator without a version, `!=`, or a
    /// comparator semver cannot read.
    pub fn parse(range: &str) -> Result<Self, InvalidRange> {
        let invalid = |reason: String| InvalidRange { range: range.to_string(), reason };
        let mut alternatives = Vec::new();
        for alternative in range.split("||") {
            let tokens: Vec<&str> = alternative.split([' ', ',', '\t']).filter(|t| !t.is_empty()).collect();
            if tokens.is_empty() {
                return Err(invalid("empty constraint".into()));
            }
            let mut comparators = Vec::new();
            let mut i = 0;
            while i < tokens.len() {
                let mut token = tokens[i].to_string();
                if token.chars().all(|c| "=<>~^!".contains(c)) {
                    let next = tokens.get(i + 1).ok_or_else(|| invalid(format!("{token:?} without a version")))?;
                    token.push_str(next);
                    i += 1;
                }
                if tokens.get(i + 1) == Some(&"-") {
                    let upper = tokens.get(i + 2).ok_or_else(|| invalid("a range `a - b` without its upper bound".into()))?;
                    comparators.push(format!(">={}", strip_v(&token)));
                    comparators.push(format!("<={}", strip_v(upper)));
                    i += 3;
                    continue;
                }
                comparators.push(comparator(&token).map_err(invalid)?);
                i += 1;
            }
            let joined = comparators.join(", ");
            alternatives.push(VersionReq::parse(&joined).map_err(|e| invalid(e.to_string()))?);
        }
        Ok(Self { alternatives })
    }

    /// Whether `version` is in the range, as Masterminds decides it: a prerelease version is
    /// in an alternative that names a prerelease anywhere when it lies within its bounds
    /// (`>=1.0.0-0` takes `1.2.0-rc.1`); Cargo's rule, which the semver crate applies, would
    /// take prereleases of the named `major.minor.patch` only.
    pub fn matches(&self, version: &Version) -> bool {
        self.alternatives.iter().any(|r| {
            r.matches(version)
                || (!version.pre.is_empty()
                    && r.comparators.iter().any(|c| !c.pre.is_empty())
                    && r.comparators.iter().all(|c| within_bound(c, version)))
        })
    }

    /// The tag of the highest version this range matches; of two tags of one version
    /// (`v1.0.0`, `1.0.0`) the first in byte order, so the choice never depends on listing
    /// order.
    pub fn highest<'a>(&self, tags: impl Iterator<Item = &'a str>) -> Option<&'a str> {
        tags.filter_map(|tag| parse_version(tag).map(|v| (v, tag)))
            .filter(|(v, _)| self.matches(v))
            .max_by(|(va, ta), (vb, tb)| va.cmp(vb).then_with(|| tb.cmp(ta)))
            .map(|(_, tag)| tag)
    }
}

/// One comparator over the total order of versions (prereleases included) for the ordering
/// operators with a full version; the semver crate's own answer for the others.
fn within_bound(c: &semver::Comparator, version: &Version) -> bool {
    use semver::Op;
    if (VersionReq { comparators: vec![c.clone()] }).matches(version) {
        return true;
    }
    let (Some(minor), Some(patch)) = (c.minor, c.patch) else { return false };
    let bound = Version { major: c.major, minor, patch, pre: c.pre.clone(), build: semver::BuildMetadata::EMPTY };
    match c.op {
        Op::Greater => *version > bound,
        Op::GreaterEq => *version >= bound,
        Op::Less => *version < bound,
        Op::LessEq => *version <= bound,
        _ => false,
    }
}

fn strip_v(version: &str) -> &str {
    version.strip_prefix(['v', 'V']).unwrap_or(version)
}

fn comparator(token: &str) -> std::result::Result<String, String> {
    let split = token.find(|c: char| !"=<>~^!".contains(c)).unwrap_or(token.len());
    let (op, version) = token.split_at(split);
    let version = strip_v(version);
    if op == "!=" {
        return Err("`!=` is not supported".into());
    }
    let wildcard = version.split('.').any(|part| matches!(part, "*" | "x" | "X"));
    Ok(if op.is_empty() && !wildcard { format!("={version}") } else { format!("{op}{version}") })
}

/// A tag read as a version, leniently as Flux does: a leading `v`, a missing minor or patch.
pub fn parse_version(tag: &str) -> Option<Version> {
    let version = strip_v(tag);
    if let Ok(v) = Version::parse(version) {
        return Some(v);
    }
    let core_end = version.find(['-', '+']).unwrap_or(version.len());
    let (core, rest) = version.split_at(core_end);
    let parts = core.split('.').count();
    if !(1..=2).contains(&parts) || !core.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let padded = format!("{core}{}{rest}", ".0".repeat(3 - parts));
    Version::parse(&padded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn highest(range: &str, names: &[&str]) -> Option<String> {
        Range::parse(range).expect("range").highest(names.iter().copied()).map(str::to_string)
    }

    #[test]
    fn the_highest_matching_tag_wins_with_or_without_v() {
        let names = ["v1.0.0", "1.2.0", "v1.10.0", "v2.0.0", "v1.11.0-rc.1", "latest", "v1.3"];
        assert_eq!(highest(">=1.0.0 <2.0.0", &names).as_deref(), Some("v1.10.0"));
        assert_eq!(highest(">=1.0.0, <2.0.0", &names).as_deref(), Some("v1.10.0"));
        assert_eq!(highest("~1.2", &names).as_deref(), Some("1.2.0"));
        assert_eq!(highest("1.3", &names).as_deref(), Some("v1.3"));
        assert_eq!(highest("^v2", &names).as_deref(), Some("v2.0.0"));
        assert_eq!(highest("1.0 - 1.2", &names).as_deref(), Some("1.2.0"));
        assert_eq!(highest("<1.0.0 || >=2.0.0", &names).as_deref(), Some("v2.0.0"));
        assert_eq!(highest("1.2.x", &names).as_deref(), Some("1.2.0"));
        assert_eq!(highest(">= 3", &names), None);
        assert_eq!(highest("*", &names).as_deref(), Some("v2.0.0"));
    }

    #[test]
    fn a_range_naming_a_prerelease_takes_prereleases_within_its_bounds() {
        let names = ["1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0-beta.1"];
        assert_eq!(highest(">=1.0.0-0 <1.5.0", &names).as_deref(), Some("1.2.0-rc.1"));
        assert_eq!(highest(">=1.0.0-0", &names).as_deref(), Some("2.0.0-beta.1"));
        assert_eq!(highest(">=1.0.0", &names).as_deref(), Some("1.1.0"), "no prerelease without one in the range");
    }

    #[test]
    fn two_tags_of_one_version_give_the_same_choice_in_any_order() {
        assert_eq!(highest("1.0.0", &["v1.0.0", "1.0.0"]), highest("1.0.0", &["1.0.0", "v1.0.0"]));
    }

    #[test]
    fn invalid_ranges_are_refused_with_the_range_named() {
        for range in ["", ">=", "!=1.0.0", "foo", "1.0 -"] {
            let err = Range::parse(range).expect_err(range);
            assert!(err.to_string().contains(&format!("{range:?}")), "{err}");
        }
    }
}
