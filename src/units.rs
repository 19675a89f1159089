//! Human units for the log lines and the plan: memory in decimal gigabytes
//! ("331 GB", as the seed logs it) and CPU in vCPU ("34 vCPU").
//!
//! Karpenter exports memory in bytes and CPU in cores; these functions only format.

/// Formats a byte count as decimal gigabytes: whole numbers from 10 GB up, one
/// decimal below (so a 2 GiB node does not read as "2 GB").
pub fn format_memory(bytes: f64) -> String {
    let gb = bytes / 1e9;
    if gb.abs() >= 10.0 {
        format!("{} GB", gb.round())
    } else {
        format!("{} GB", trim_decimals(gb, 1))
    }
}

/// Formats cores as vCPU with at most two decimals ("0.25 vCPU", "48 vCPU").
pub fn format_cpu(cores: f64) -> String {
    format!("{} vCPU", trim_decimals(cores, 2))
}

/// Formats a resource value in its unit, by Karpenter's resource_type label.
pub fn format_resource(resource: crate::plan::Resource, value: f64) -> String {
    match resource {
        crate::plan::Resource::Memory => format_memory(value),
        crate::plan::Resource::Cpu => format_cpu(value),
    }
}

fn trim_decimals(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Parses a Kubernetes quantity ("500m", "2", "1Gi", "128974848", "1.5G") into
/// its base unit (cores or bytes). Returns None for text that is not a quantity.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024.0_f64.powi(2),
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        _ => {
            // Exponent form: 1e3, 12E6
            if let Some(exp) = suffix.strip_prefix(['e', 'E']) {
                return Some(number * 10f64.powi(exp.parse().ok()?));
            }
            return None;
        }
    };
    Some(number * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_matches_the_seed() {
        assert_eq!(format_memory(331e9), "331 GB");
        assert_eq!(format_memory(91e9), "91 GB");
        assert_eq!(format_memory(2.0 * 1024.0 * 1024.0 * 1024.0), "2.1 GB");
        assert_eq!(format_memory(0.0), "0 GB");
    }

    #[test]
    fn cpu_matches_the_seed() {
        assert_eq!(format_cpu(48.0), "48 vCPU");
        assert_eq!(format_cpu(34.0), "34 vCPU");
        assert_eq!(format_cpu(0.25), "0.25 vCPU");
        assert_eq!(format_cpu(1.5), "1.5 vCPU");
    }

    #[test]
    fn quantities() {
        let cases = [
            ("500m", Some(0.5)),
            ("2", Some(2.0)),
            ("1Gi", Some(1073741824.0)),
            ("128974848", Some(128974848.0)),
            ("1.5G", Some(1.5e9)),
            ("100Mi", Some(104857600.0)),
            ("1e3", Some(1000.0)),
            ("abc", None),
            ("1Xi", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_quantity(text), want, "{text}");
        }
    }
}
