//! What each process of the stack costs: CPU seconds and peak resident memory, from /proc, for a
//! process and all its descendants (nginx's workers, RabbitMQ's helpers).

use std::collections::HashMap;

/// Linux reports CPU time in clock ticks: 100 per second on every architecture it runs here.
const TICKS_PER_SECOND: f64 = 100.0;

fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: split after it.
    let after = &stat[stat.rfind(')')? + 2..];
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// `pid` and every process below it.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut parent_of = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            if let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok())
                && let Some(fields) = stat_fields(child)
                && let Some(ppid) = fields.get(1).and_then(|p| p.parse::<u32>().ok())
            {
                parent_of.insert(child, ppid);
            }
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| **pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found
}

/// CPU seconds (user + system) used so far by a process tree.
pub fn cpu_seconds(pid: u32) -> f64 {
    tree(pid)
        .into_iter()
        .filter_map(stat_fields)
        // Fields after the name: state is 0, so utime is 11 and stime 12.
        .map(|f| {
            f.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
                + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0)
        })
        .sum::<f64>()
        / TICKS_PER_SECOND
}

/// Peak resident memory (VmHWM) of a process tree in MB: the sum of each process's own peak.
pub fn peak_rss_mb(pid: u32) -> f64 {
    tree(pid)
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .sum::<f64>()
        / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_cost() {
        let me = std::process::id();
        assert!(tree(me).contains(&me));
        assert!(peak_rss_mb(me) > 1.0);
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(cpu_seconds(me) > 0.0);
    }
}
