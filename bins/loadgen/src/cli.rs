//! The command-line interface. Scripts rely on these flag names and on the JSON report
//! fields (see `report.rs`), so both are part of the tool's contract.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Drives a lockstock server (SPEC §2 paths) over HTTP and reports what it measured.
///
/// Exit status: 0 on success, 1 when the run could not be carried out, 2 on a usage error,
/// 3 when the server oversold or lost purchases (or, with `--reconcile`, its own
/// reconciliation found differences).
#[derive(Debug, Parser)]
#[command(name = "inventory-loadgen", version, about, long_about)]
pub(crate) struct Cli {
    /// Which scenario to run.
    #[arg(value_enum)]
    pub(crate) scenario: Scenario,

    /// Base URL of the server (plain HTTP; loopback in this project's runs).
    #[arg(
        long,
        default_value = "http://127.0.0.1:8000",
        env = "LOADGEN_BASE_URL"
    )]
    pub(crate) base_url: String,

    /// Admin account used to create the products and read stock back.
    #[arg(long, default_value = "admin", env = "ADMIN_USERNAME")]
    pub(crate) admin_username: String,

    /// Password of the admin account.
    #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true)]
    pub(crate) admin_password: String,

    /// Units of stock per product [default: 100; sustained: 10000000].
    #[arg(long)]
    pub(crate) stock: Option<u64>,

    /// Buyer accounts [default: 1000; sustained: the concurrency].
    #[arg(long)]
    pub(crate) buyers: Option<usize>,

    /// Window over which the burst scenarios fire their requests, evenly spread; 0 = all at once.
    #[arg(long, default_value_t = 1000)]
    pub(crate) window_ms: u64,

    /// Concurrent clients in `sustained`; in the burst scenarios a cap on requests in flight
    /// [default: sustained 64, bursts unlimited]. Also the concurrency of `--compare-health`.
    #[arg(long)]
    pub(crate) concurrency: Option<usize>,

    /// Length of a `sustained` run in seconds.
    #[arg(long, default_value_t = 10)]
    pub(crate) duration_s: u64,

    /// Quantity per purchase (per basket line in `cart`): `N`, or an inclusive range `A..B`
    /// (also `A..=B`) drawn at random.
    #[arg(long, default_value = "1")]
    pub(crate) quantity: QuantityRange,

    /// Number of products [default: multi-product 4, cart 10, sustained 1]. `multi-product`
    /// spreads buyers across them round-robin; `cart` draws each buyer a basket of 2–5 of
    /// them; `sustained` binds client `i` to product `i mod N` (with N = concurrency, no
    /// two clients ever contend for a product).
    #[arg(long)]
    pub(crate) products: Option<usize>,

    /// Share of `sustained` requests that read stock instead of buying (0.0..=1.0).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) read_ratio: f64,

    /// Price of the created products in minor units.
    #[arg(long, default_value_t = 1999)]
    pub(crate) price: u64,

    /// Buyer usernames are `<prefix>_<n>`; reuse a prefix to reuse accounts across runs.
    #[arg(long, default_value = "lg")]
    pub(crate) user_prefix: String,

    /// Password of the buyer accounts.
    #[arg(
        long,
        default_value = "loadgen-password",
        env = "LOADGEN_USER_PASSWORD",
        hide_env_values = true
    )]
    pub(crate) user_password: String,

    /// Registrations/logins in flight during setup (bcrypt makes them slow by design).
    #[arg(long, default_value_t = 16)]
    pub(crate) setup_concurrency: usize,

    /// Keep buyer tokens in this file (mode 0600) so repeated runs skip setup.
    #[arg(long)]
    pub(crate) token_cache: Option<PathBuf>,

    /// Per-request timeout.
    #[arg(long, default_value_t = 30_000)]
    pub(crate) request_timeout_ms: u64,

    /// Retries of a purchase answered 503 (lock timeout), honouring Retry-After. Retries
    /// reuse the request's Idempotency-Key, so they can never buy twice.
    #[arg(long, default_value_t = 0)]
    pub(crate) retries_on_503: u32,

    /// Do not open the connections before the burst (then connecting is part of the latency).
    #[arg(long)]
    pub(crate) no_warmup: bool,

    /// Also measure GET /health with the same client and concurrency (the HTTP ceiling).
    #[arg(long)]
    pub(crate) compare_health: bool,

    /// Length of the `--compare-health` measurement in seconds.
    #[arg(long, default_value_t = 3)]
    pub(crate) health_duration_s: u64,

    /// After the run, also ask the server to reconcile (GET /api/admin/reconcile, as the
    /// admin); differences fail the run like oversell does. Skipped quietly when the
    /// server has no such endpoint.
    #[arg(long)]
    pub(crate) reconcile: bool,

    /// Seed of the random quantities, baskets and read/buy mix.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,

    /// Write the JSON report here.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,

    /// Write an SVG chart here (latency and throughput over time, outcomes by send order).
    #[arg(long)]
    pub(crate) chart: Option<PathBuf>,

    /// No progress bars.
    #[arg(long)]
    pub(crate) quiet: bool,
}

/// The scenarios of SPEC §4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
    /// One product, many buyers, every purchase fired within a short window.
    BlackFriday,
    /// Large stock, C concurrent clients for T seconds.
    Sustained,
    /// Several products, buyers spread across them, fired within a window.
    MultiProduct,
    /// One multi-product order per buyer (a random basket of 2–5 products), fired within
    /// a window.
    Cart,
}

impl Scenario {
    /// The name used in reports (same as on the command line).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::BlackFriday => "black-friday",
            Self::Sustained => "sustained",
            Self::MultiProduct => "multi-product",
            Self::Cart => "cart",
        }
    }
}

impl Cli {
    /// Stock per product, with the scenario's default.
    pub(crate) fn stock(&self) -> u64 {
        self.stock.unwrap_or(match self.scenario {
            Scenario::Sustained => 10_000_000,
            Scenario::BlackFriday | Scenario::MultiProduct | Scenario::Cart => 100,
        })
    }

    /// Concurrent clients of `sustained` (and of the health comparison there).
    pub(crate) fn sustained_concurrency(&self) -> usize {
        self.concurrency.unwrap_or(64).max(1)
    }

    /// Number of buyer accounts the scenario needs.
    pub(crate) fn buyers(&self) -> usize {
        let default = match self.scenario {
            Scenario::Sustained => self.sustained_concurrency(),
            Scenario::BlackFriday | Scenario::MultiProduct | Scenario::Cart => 1000,
        };
        self.buyers.unwrap_or(default).max(1)
    }

    /// Number of products the scenario creates.
    pub(crate) fn product_count(&self) -> usize {
        match self.scenario {
            Scenario::MultiProduct => self.products.unwrap_or(4).max(1),
            Scenario::Cart => self.products.unwrap_or(10).max(1),
            Scenario::Sustained => self.products.unwrap_or(1).max(1),
            Scenario::BlackFriday => 1,
        }
    }

    /// Concurrency used for the HTTP client pool and for `--compare-health`.
    pub(crate) fn effective_concurrency(&self) -> usize {
        match self.scenario {
            Scenario::Sustained => self.sustained_concurrency(),
            Scenario::BlackFriday | Scenario::MultiProduct | Scenario::Cart => self
                .concurrency
                .unwrap_or(self.buyers())
                .clamp(1, self.buyers()),
        }
    }

    pub(crate) fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }

    /// Checks that clap's types cannot express.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.read_ratio) {
            return Err(format!(
                "--read-ratio must be within 0.0..=1.0, got {}",
                self.read_ratio
            ));
        }
        if self.duration_s == 0 && self.scenario == Scenario::Sustained {
            return Err("--duration-s must be at least 1".to_owned());
        }
        if self.setup_concurrency == 0 {
            return Err("--setup-concurrency must be at least 1".to_owned());
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        if self.user_prefix.is_empty()
            || self.user_prefix.len() > 40
            || !self.user_prefix.chars().all(allowed)
        {
            return Err("--user-prefix must be 1-40 characters of [A-Za-z0-9_.-]".to_owned());
        }
        if self.price == 0 {
            return Err("--price must be positive".to_owned());
        }
        Ok(())
    }
}

/// Inclusive range of quantities per purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuantityRange {
    min: u32,
    max: u32,
}

impl QuantityRange {
    /// A range `min..=max`; `None` unless `1 <= min <= max`.
    pub(crate) fn new(min: u32, max: u32) -> Option<Self> {
        (min >= 1 && min <= max).then_some(Self { min, max })
    }

    pub(crate) fn min(self) -> u32 {
        self.min
    }

    pub(crate) fn max(self) -> u32 {
        self.max
    }

    pub(crate) fn is_fixed(self) -> bool {
        self.min == self.max
    }
}

impl fmt::Display for QuantityRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_fixed() {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}..{}", self.min, self.max)
        }
    }
}

/// Why a `--quantity` value was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum QuantityParseError {
    #[error("`{0}` is not a whole number")]
    NotANumber(String),
    #[error("quantities start at 1 and a range must not be reversed (got {0}..{1})")]
    Empty(u32, u32),
}

impl FromStr for QuantityRange {
    type Err = QuantityParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let number = |part: &str| {
            part.trim()
                .parse::<u32>()
                .map_err(|_| QuantityParseError::NotANumber(part.trim().to_owned()))
        };
        let (min, max) = match text.split_once("..") {
            None => {
                let n = number(text)?;
                (n, n)
            }
            Some((low, high)) => (
                number(low)?,
                number(high.strip_prefix('=').unwrap_or(high))?,
            ),
        };
        Self::new(min, max).ok_or(QuantityParseError::Empty(min, max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_number_is_a_fixed_quantity() {
        let q: QuantityRange = "3".parse().unwrap();
        assert_eq!((q.min(), q.max()), (3, 3));
        assert!(q.is_fixed());
        assert_eq!(q.to_string(), "3");
    }

    #[test]
    fn ranges_are_inclusive_with_or_without_equals() {
        assert_eq!(
            "1..3".parse::<QuantityRange>().unwrap(),
            QuantityRange::new(1, 3).unwrap()
        );
        assert_eq!(
            "1..=3".parse::<QuantityRange>().unwrap(),
            QuantityRange::new(1, 3).unwrap()
        );
        assert_eq!(
            " 2 .. 5 ".parse::<QuantityRange>().unwrap().to_string(),
            "2..5"
        );
    }

    #[test]
    fn zero_reversed_and_garbage_are_refused() {
        assert_eq!(
            "0".parse::<QuantityRange>(),
            Err(QuantityParseError::Empty(0, 0))
        );
        assert_eq!(
            "5..2".parse::<QuantityRange>(),
            Err(QuantityParseError::Empty(5, 2))
        );
        assert!(matches!(
            "x..2".parse::<QuantityRange>(),
            Err(QuantityParseError::NotANumber(_))
        ));
        assert!(matches!(
            "-1".parse::<QuantityRange>(),
            Err(QuantityParseError::NotANumber(_))
        ));
        assert!(matches!(
            "1..".parse::<QuantityRange>(),
            Err(QuantityParseError::NotANumber(_))
        ));
    }

    #[test]
    fn scenario_defaults_follow_the_spec() {
        let cli = Cli::try_parse_from(["x", "black-friday", "--admin-password", "p"]).unwrap();
        assert_eq!(
            (cli.stock(), cli.buyers(), cli.window_ms),
            (100, 1000, 1000)
        );
        assert_eq!(cli.effective_concurrency(), 1000);
        let cli = Cli::try_parse_from(["x", "sustained", "--admin-password", "p"]).unwrap();
        assert_eq!((cli.buyers(), cli.effective_concurrency()), (64, 64));
        assert!(cli.stock() >= 1_000_000);
    }

    #[test]
    fn the_documented_interface_parses() {
        let cli = Cli::try_parse_from([
            "inventory-loadgen",
            "multi-product",
            "--base-url",
            "http://127.0.0.1:9",
            "--admin-username",
            "root",
            "--admin-password",
            "secret",
            "--stock",
            "5",
            "--buyers",
            "50",
            "--window-ms",
            "0",
            "--concurrency",
            "8",
            "--duration-s",
            "2",
            "--quantity",
            "1..2",
            "--json",
            "r.json",
            "--chart",
            "c.svg",
        ])
        .unwrap();
        assert_eq!(cli.scenario, Scenario::MultiProduct);
        assert_eq!(cli.effective_concurrency(), 8);
        assert_eq!(cli.quantity, QuantityRange::new(1, 2).unwrap());
        assert!(cli.validate().is_ok());
    }

    #[test]
    fn cart_defaults_to_ten_products_and_a_burst() {
        let cli = Cli::try_parse_from(["x", "cart", "--admin-password", "p"]).unwrap();
        assert_eq!(cli.scenario.name(), "cart");
        assert_eq!(
            (cli.product_count(), cli.buyers(), cli.stock()),
            (10, 1000, 100)
        );
        let cli = Cli::try_parse_from([
            "x",
            "cart",
            "--admin-password",
            "p",
            "--products",
            "3",
            "--buyers",
            "50",
            "--window-ms",
            "0",
        ])
        .unwrap();
        assert_eq!(
            (cli.product_count(), cli.buyers(), cli.window_ms),
            (3, 50, 0)
        );
    }

    #[test]
    fn values_clap_cannot_check_are_validated() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["x", "sustained", "--admin-password", "p"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args).unwrap().validate()
        };
        assert!(parse(&[]).is_ok());
        assert!(parse(&["--read-ratio", "1.5"]).is_err());
        assert!(parse(&["--user-prefix", "has space"]).is_err());
        assert!(parse(&["--user-prefix", ""]).is_err());
        assert!(parse(&["--duration-s", "0"]).is_err());
        assert!(parse(&["--price", "0"]).is_err());
    }
}
