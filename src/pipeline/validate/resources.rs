//! Slurm `resources:` (cpus, mem, gpus, time, partition, account), each value checked against Slurm's syntax.

use super::*;
use crate::pipeline::Resources;
use crate::pipeline::yaml::Node;

impl Checker<'_> {
    /// A `resources:` mapping (of `owner`), each value checked against Slurm's syntax.
    pub(super) fn resources(&mut self, node: &Node, owner: &str) -> Resources {
        let mut r = Resources::default();
        let Some(entries) = node.as_map() else {
            self.error(
                node.pos,
                format!(
                    "`resources` of {owner} must be a mapping (cpus, mem, gpus, time, partition, account), not {}",
                    node.type_name()
                ),
                None,
            );
            return r;
        };
        for (key, value) in entries {
            let name = key.as_scalar().unwrap_or_default();
            let text = value.as_scalar().unwrap_or_default().trim().to_string();
            let count = || text.parse::<u32>().ok();
            let problem = match name {
                "cpus" => match count().filter(|n| *n > 0) {
                    Some(n) => {
                        r.cpus = Some(n);
                        None
                    }
                    None => Some("`cpus` must be a whole number of at least 1"),
                },
                "gpus" => match count() {
                    Some(n) => {
                        r.gpus = Some(n);
                        None
                    }
                    None => Some("`gpus` must be a whole number"),
                },
                "mem" if valid_memory(&text) => {
                    r.mem = Some(text.clone());
                    None
                }
                "mem" => {
                    Some("`mem` must be megabytes or a number with K, M, G or T (`500M`, `4G`)")
                }
                "time" if valid_time(&text) => {
                    r.time = Some(text.clone());
                    None
                }
                "time" => Some("`time` must be minutes, `H:MM:SS`, `MM:SS` or `D-HH:MM:SS`"),
                "partition" | "account" if valid_slurm_name(&text) => {
                    let slot = if name == "partition" {
                        &mut r.partition
                    } else {
                        &mut r.account
                    };
                    *slot = Some(text.clone());
                    None
                }
                "partition" | "account" => Some("a partition or account is a plain name"),
                _ => {
                    self.check_key(key, RESOURCE_KEYS, &format!("unknown resource in {owner}:"));
                    None
                }
            };
            if let Some(problem) = problem {
                self.error(
                    value.pos,
                    format!("{problem} (in {owner}), not `{text}`"),
                    None,
                );
            }
        }
        r
    }
}

/// Slurm's `--mem`: a number, optionally followed by K, M, G or T.
pub(super) fn valid_memory(text: &str) -> bool {
    let digits = text.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    text.len() - digits.len() <= 1
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Slurm's `--time`: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M` or `D-H:M:S`, all numbers.
pub(super) fn valid_time(text: &str) -> bool {
    let numbers = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (days, clock) = match text.split_once('-') {
        Some((d, rest)) => (Some(d), rest),
        None => (None, text),
    };
    let parts: Vec<&str> = clock.split(':').collect();
    days.is_none_or(numbers) && parts.len() <= 3 && parts.iter().all(|p| numbers(p))
}

/// A name Slurm takes as it is and a job script can hold without quoting.
pub(super) fn valid_slurm_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn slurm_memory_and_time_syntax() {
        for ok in ["500", "500M", "4G", "1T", "64k"] {
            assert!(valid_memory(ok), "{ok}");
        }
        for bad in ["", "G", "4GB", "lots", "1.5G", "-1"] {
            assert!(!valid_memory(bad), "{bad}");
        }
        for ok in ["30", "30:00", "1:00:00", "2-00", "2-12:00", "1-00:00:00"] {
            assert!(valid_time(ok), "{ok}");
        }
        for bad in ["", "1h", "1:2:3:4", "-1:00", "1-", "soon"] {
            assert!(!valid_time(bad), "{bad}");
        }
    }
}
