//! An alert's version: what `ETag` and `If-Match` speak of, and what an
//! `update` frame says changed (API.md, Safe writes).

use p4p_protocol::Alert;

use super::Invalid;

/// The versions an `If-Match` header names: any (`*`) or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    Any,
    Versions(Vec<i64>),
}

/// The most entity tags one `If-Match` may list.
const MAX_TAGS: usize = 16;

impl IfMatch {
    /// Reads `"3"`, `W/"3"`, a comma-separated list of them, or `*`; a
    /// bare number is taken too (clients that forget the quotes).
    pub fn parse(header: &str) -> Result<IfMatch, Invalid> {
        let header = header.trim();
        if header == "*" {
            return Ok(IfMatch::Any);
        }
        let bad = || {
            Invalid::new(
                "If-Match",
                "must be the alert's ETag, such as \"3\" (its `version` in quotes), or *",
            )
        };
        let versions = header
            .split(',')
            .map(|tag| {
                let tag = tag.trim();
                let tag = tag.strip_prefix("W/").unwrap_or(tag);
                let tag = tag
                    .strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .unwrap_or(tag);
                tag.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(bad)
            })
            .collect::<Result<Vec<i64>, Invalid>>()?;
        if versions.is_empty() || versions.len() > MAX_TAGS {
            return Err(bad());
        }
        Ok(IfMatch::Versions(versions))
    }

    pub fn matches(&self, version: i64) -> bool {
        match self {
            IfMatch::Any => true,
            IfMatch::Versions(versions) => versions.contains(&version),
        }
    }
}

/// The `ETag` of an alert at `version`.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// The names of the alert's fields (as its JSON names them) that differ
/// between `before` and `after`: what an `update` frame says `changed`.
/// The bookkeeping fields (`version`, `updated_at`, `status_reason`) are
/// not listed: they change with everything.
pub fn changed_fields(before: &Alert, after: &Alert) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut note = |name: &'static str, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    note("kind", before.kind != after.kind);
    note("status", before.status != after.status);
    note("title", before.title != after.title);
    note("description", before.description != after.description);
    note("occurred_at", before.occurred_at != after.occurred_at);
    note("location", before.location != after.location);
    note("radius_km", before.radius_km != after.radius_km);
    note("suspects", before.suspects != after.suspects);
    note("vehicles", before.vehicles != after.vehicles);
    note("verified", before.verified != after.verified);
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_takes_etags_lists_weak_tags_and_any() {
        assert_eq!(IfMatch::parse("\"3\""), Ok(IfMatch::Versions(vec![3])));
        assert_eq!(IfMatch::parse("3"), Ok(IfMatch::Versions(vec![3])));
        assert_eq!(
            IfMatch::parse(" W/\"3\", \"4\" "),
            Ok(IfMatch::Versions(vec![3, 4]))
        );
        assert_eq!(IfMatch::parse("*"), Ok(IfMatch::Any));
        for bad in ["", "\"\"", "\"x\"", "\"0\"", "\"-1\"", "\"3\",", "abc"] {
            let error = IfMatch::parse(bad).expect_err(bad);
            assert_eq!(error.field, "If-Match", "{bad}");
        }
        let many = vec!["\"1\""; 17].join(",");
        assert!(IfMatch::parse(&many).is_err());
        assert!(IfMatch::Versions(vec![3, 4]).matches(4));
        assert!(!IfMatch::Versions(vec![3]).matches(4));
        assert!(IfMatch::Any.matches(9));
        assert_eq!(etag(7), "\"7\"");
    }
}
