//! Load from a second process: wrk (Debian's package), driven by a generated Lua script
//! that sets each request's path and token and reports percentiles as one JSON line.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// One request of a load: the path and the bearer token it carries.
#[derive(Clone)]
pub struct Req {
    pub path: String,
    pub token: String,
}

pub struct Load<'a> {
    pub base: &'a str,
    pub workspace: &'a str,
    /// Cycled through; each thread starts at its own offset.
    pub requests: &'a [Req],
    pub connections: u32,
    pub duration: Duration,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub requests: u64,
    pub rps: f64,
    pub p50_us: f64,
    pub p95_us: f64,
    pub p99_us: f64,
    /// Connection errors, timeouts and non-2xx answers.
    pub errors: u64,
}

fn lua_string(s: &str) -> String {
    format!("{s:?}")
}

fn script(load: &Load<'_>, threads: u32) -> String {
    let reqs: Vec<String> = load
        .requests
        .iter()
        .map(|r| format!("{{{},{}}}", lua_string(&r.path), lua_string(&r.token)))
        .collect();
    let stride = load.requests.len() / threads as usize;
    let mut lua = format!(
        "local reqs = {{{}}}\nlocal ws = {}\nlocal stride = {stride}\n",
        reqs.join(",\n"),
        lua_string(load.workspace),
    );
    lua.push_str(
        r#"local started = 0
setup = function(thread)
  thread:set("id", started)
  started = started + 1
end
local counter = 0
init = function(args)
  counter = id * stride
end
request = function()
  local r = reqs[(counter % #reqs) + 1]
  counter = counter + 1
  return wrk.format("GET", r[1], { ["X-Workspace-ID"] = ws, ["Authorization"] = "Bearer " .. r[2] })
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"duration_us":%d,"errors":%d,"p50":%d,"p95":%d,"p99":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout + e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"#,
    );
    lua
}

pub fn run(load: &Load<'_>) -> Outcome {
    let threads = load.connections.clamp(1, 2);
    let path = std::env::temp_dir().join(format!("edgecache-wrk-{}.lua", e2e::random_suffix()));
    std::fs::write(&path, script(load, threads)).expect("lua script");
    let output = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.duration.as_secs().max(1)))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(&path)
        .arg(load.base)
        .output()
        .expect("wrk runs (scripts/setup-bench installs it)");
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("wrk printed no result: {stdout}"));
    let v: Value = serde_json::from_str(line).expect("wrk result JSON");
    let num = |k: &str| v[k].as_f64().unwrap_or(0.0);
    let secs = num("duration_us") / 1e6;
    Outcome {
        requests: v["requests"].as_u64().unwrap_or(0),
        rps: if secs > 0.0 {
            num("requests") / secs
        } else {
            0.0
        },
        p50_us: num("p50"),
        p95_us: num("p95"),
        p99_us: num("p99"),
        errors: v["errors"].as_u64().unwrap_or(0),
    }
}

/// The middle of `values`, or the mean of the two middle ones.
fn middle(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Rounds of one load as one outcome: the median of each rate and percentile, the
/// requests and errors of all rounds.
pub fn median(rounds: &[Outcome]) -> Outcome {
    let of = |figure: fn(&Outcome) -> f64| middle(rounds.iter().map(figure).collect());
    Outcome {
        requests: rounds.iter().map(|o| o.requests).sum(),
        rps: of(|o| o.rps),
        p50_us: of(|o| o.p50_us),
        p95_us: of(|o| o.p95_us),
        p99_us: of(|o| o.p99_us),
        errors: rounds.iter().map(|o| o.errors).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::{median, Outcome};

    fn run(rps: f64, p99_us: f64) -> Outcome {
        Outcome {
            requests: 10,
            rps,
            p50_us: 1.0,
            p95_us: 2.0,
            p99_us,
            errors: 1,
        }
    }

    #[test]
    fn rounds_give_each_figure_its_median_and_sum_their_counts() {
        let one = median(&[run(5.0, 900.0)]);
        assert_eq!((one.rps, one.p99_us, one.requests), (5.0, 900.0, 10));
        let three = median(&[run(9.0, 100.0), run(1.0, 7000.0), run(4.0, 300.0)]);
        assert_eq!((three.rps, three.p99_us), (4.0, 300.0));
        assert_eq!((three.requests, three.errors), (30, 3));
        let two = median(&[run(2.0, 100.0), run(4.0, 300.0)]);
        assert_eq!((two.rps, two.p99_us), (3.0, 200.0));
    }
}
