//! Output layouts Consul's commands get from Go's libraries, as pure functions: `tabwriter`
//! columns, `json.MarshalIndent`, human byte sizes and RFC 850 times.

use serde_json::Value;

/// Go's `text/tabwriter` with spaces and no flags: tab-terminated cells line up in columns,
/// a column running over consecutive lines that have a cell in it, each cell padded to the
/// column's widest plus `padding` (at least `min_width`). Text after a line's last tab is no
/// cell and is left as it is.
pub fn tabwriter(text: &str, min_width: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let cells: Vec<usize> = lines.iter().map(|parts| parts.len() - 1).collect();
    let mut widths: Vec<Vec<usize>> = cells.iter().map(|&n| vec![0; n]).collect();
    let columns = cells.iter().copied().max().unwrap_or(0);
    for column in 0..columns {
        let mut i = 0;
        while i < lines.len() {
            if cells[i] <= column {
                i += 1;
                continue;
            }
            let start = i;
            let mut width = min_width;
            while i < lines.len() && cells[i] > column {
                width = width.max(lines[i][column].chars().count() + padding);
                i += 1;
            }
            for line in &mut widths[start..i] {
                line[column] = width;
            }
        }
    }
    let rendered: Vec<String> = lines
        .iter()
        .zip(&widths)
        .map(|(parts, widths)| {
            let mut out = String::new();
            for (j, part) in parts.iter().enumerate() {
                match widths.get(j) {
                    Some(width) => out.push_str(&format!("{part:<width$}")),
                    None => out.push_str(part),
                }
            }
            out
        })
        .collect();
    rendered.join("\n")
}

/// Go's `json.MarshalIndent(v, "", indent)`: pretty JSON with `<`, `>` and `&` escaped as
/// Go escapes them.
pub fn go_json(value: &Value, indent: &str) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    if serde::Serialize::serialize(value, &mut serializer).is_err() {
        return "null".to_owned();
    }
    go_escape(&String::from_utf8_lossy(&out))
}

/// Go's `json.Encoder` output: compact JSON, Go's escapes, and a newline.
pub fn go_json_line(value: &Value) -> String {
    format!("{}\n", go_escape(&value.to_string()))
}

/// These characters only occur inside JSON strings, where Go writes them as `\uXXXX`.
fn go_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Consul's human byte sizes: `0`, `313B`, `1.6KB`, `12MB` (one decimal, `.0` dropped).
pub fn byte_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TB"),
        (1 << 30, "GB"),
        (1 << 20, "MB"),
        (1 << 10, "KB"),
    ];
    if bytes == 0 {
        return "0".to_owned();
    }
    let (value, unit) = UNITS
        .iter()
        .find(|(size, _)| bytes >= *size)
        .map_or((bytes as f64, "B"), |(size, unit)| {
            (bytes as f64 / *size as f64, *unit)
        });
    let text = format!("{value:.1}");
    format!("{}{unit}", text.strip_suffix(".0").unwrap_or(&text))
}

/// A Go time (`2024-05-01T10:00:00.123Z`, or with a `+02:00` offset) in Go's RFC 850 layout
/// in UTC: `Wednesday, 01-May-24 10:00:00 UTC`. `None` if it is not such a time.
pub fn rfc850(go_time: &str) -> Option<String> {
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let number = |s: &str| s.parse::<i64>().ok();
    let (date, rest) = go_time.split_once('T')?;
    let mut date_parts = date.splitn(3, '-');
    let (year, month, day) = (
        number(date_parts.next()?)?,
        number(date_parts.next()?)?,
        number(date_parts.next()?)?,
    );
    let clock = rest.get(..8)?;
    let mut clock_parts = clock.split(':');
    let (hour, minute, second) = (
        number(clock_parts.next()?)?,
        number(clock_parts.next()?)?,
        number(clock_parts.next()?)?,
    );
    // Skip the fraction; the zone is `Z` or `±hh:mm`.
    let zone = rest[8..].trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = match zone {
        "Z" => 0,
        _ => {
            let sign = match zone.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let (h, m) = zone.get(1..)?.split_once(':')?;
            sign * (number(h)? * 3600 + number(m)? * 60)
        }
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    Some(format!(
        "{}, {day:02}-{}-{:02} {:02}:{:02}:{:02} UTC",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        year.rem_euclid(100),
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn tabwriter_lines_up_columns_like_go() {
        // `kv get -detailed`: minwidth 0, padding 6; the last cell is no column.
        assert_eq!(
            tabwriter("CreateIndex\t5\nFlags\t0\nValue\tbar", 0, 6),
            "CreateIndex      5\nFlags            0\nValue            bar"
        );
        // A line without cells ends a column block.
        assert_eq!(tabwriter("a\t1\n\nlonger\t2", 0, 1), "a 1\n\nlonger 2");
        // Cells before a trailing tab are padded too; minwidth holds.
        assert_eq!(
            tabwriter(" Type\tCount\t\n Total\t\t", 8, 6),
            " Type       Count      \n Total                 "
        );
    }

    #[test]
    fn json_is_indented_and_escaped_like_go() {
        let value = json!([{"key": "a<b>&c", "flags": 0, "value": ""}]);
        assert_eq!(
            go_json(&value, "\t"),
            "[\n\t{\n\t\t\"key\": \"a\\u003cb\\u003e\\u0026c\",\n\t\t\"flags\": 0,\n\t\t\"value\": \"\"\n\t}\n]"
        );
        assert_eq!(go_json(&json!([]), "\t"), "[]");
        assert_eq!(go_json_line(&json!({"a": 1})), "{\"a\":1}\n");
    }

    #[test]
    fn byte_sizes_read_like_consuls() {
        for (bytes, text) in [
            (0, "0"),
            (313, "313B"),
            (1024, "1KB"),
            (1638, "1.6KB"),
            (5 << 20, "5MB"),
            (3 << 30, "3GB"),
        ] {
            assert_eq!(byte_size(bytes), text, "{bytes}");
        }
    }

    #[test]
    fn go_times_print_in_rfc850() {
        for (time, text) in [
            (
                "2024-05-01T10:00:00.123456Z",
                "Wednesday, 01-May-24 10:00:00 UTC",
            ),
            ("1970-01-01T00:00:00Z", "Thursday, 01-Jan-70 00:00:00 UTC"),
            (
                "2000-02-29T23:30:00-01:00",
                "Wednesday, 01-Mar-00 00:30:00 UTC",
            ),
        ] {
            assert_eq!(rfc850(time).as_deref(), Some(text), "{time}");
        }
        assert_eq!(rfc850("yesterday"), None);
        assert_eq!(rfc850(""), None);
    }
}
