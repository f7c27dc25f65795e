//! `origin serve` (the default), `origin seed` and `origin token`.

use clap::{Parser, Subcommand};
use origin::auth::{issue, Claims};
use origin::cache::topology::Layout;
use origin::config::{Config, Secret, Settings};
use origin::store::{self, Store};
use origin::{invalidation, seeding, telemetry, Application};
use shared::WorkspaceId;

#[derive(Parser)]
#[command(about = "The edgecache origin service")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default). Seeds the demo workspace 15213 on first start.
    Serve,
    /// Apply the database's migrations and exit: run before instances of a new version
    /// start, none of them waits on a long one (a keys index rebuilt over millions of
    /// contacts takes minutes).
    Migrate,
    /// Add workspaces of generated contacts.
    Seed {
        /// Workspace ids to create (repeat the flag for several).
        #[arg(long = "workspace", default_value = seeding::DEMO_WORKSPACE)]
        workspaces: Vec<String>,
        #[arg(long, default_value_t = 200_000)]
        contacts: u32,
        #[arg(long, default_value_t = 4)]
        boards: u32,
        /// Conversations started with the newest contacts of each workspace.
        #[arg(long, default_value_t = seeding::DEMO_HISTORY.conversations)]
        conversations: u32,
        /// Messages spread over those conversations, half of them in the first.
        #[arg(long, default_value_t = seeding::DEMO_HISTORY.messages)]
        messages: u64,
    },
    /// Time counts and a list page from the database, Redis and memory (in process).
    Bench {
        #[arg(long, default_value = "15213")]
        workspace: String,
        #[arg(long, default_value_t = 300)]
        iterations: usize,
        /// Instead: for each count (comma-separated), an L1 bounded to hold that many
        /// counts-sized entries, filled past its bound: resident memory against the
        /// bound, and lookup latency.
        #[arg(long, value_delimiter = ',')]
        l1_entries: Vec<usize>,
    },
    /// The counters the database keeps for counts and list totals.
    Counters {
        #[command(subcommand)]
        action: CountersAction,
    },
    /// Print a signed token (needs JWT_SECRET).
    Token {
        #[arg(long, default_value = "admin")]
        user: String,
        #[arg(long = "workspace", default_value = "15213")]
        workspaces: Vec<String>,
        #[arg(long)]
        admin: bool,
        #[arg(long, default_value_t = 86_400)]
        ttl_secs: u64,
    },
}

#[derive(Subcommand)]
enum CountersAction {
    /// Recount the contacts and report where the counters differ (exit status 1 if they
    /// do and were not repaired). Reads one snapshot; writers go on meanwhile.
    Check {
        /// Only this workspace (default: all).
        #[arg(long)]
        workspace: Option<String>,
        /// Replace the counters that differ by the recount.
        #[arg(long)]
        repair: bool,
    },
}

/// A counts answer as cached (15 numbers under their names), for sizing L1.
const COUNTS_LIKE: &str = r#"{"unassigned":51784,"assignedToMe":2031,"open":124168,"closed":61646,"total":185814,"highPriority":27789,"mediumPriority":92908,"lowPriority":65117,"needsResponse":26226,"followUp":20435,"favorites":8108,"archived":14186,"unhappyCustomers":18518,"newCustomers":1797,"recentActivity":13537}"#;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn token(
    secret: &str,
    user: String,
    workspaces: Vec<String>,
    admin: bool,
    ttl_secs: u64,
) -> Result<String, BoxError> {
    let exp = u64::try_from(chrono::Utc::now().timestamp())? + ttl_secs;
    let claims = Claims {
        sub: user,
        workspaces,
        role: admin.then(|| "admin".to_owned()),
        roles: Default::default(),
        exp,
    };
    Ok(issue(secret.as_bytes(), &claims)?)
}

fn random_secret() -> Result<String, BoxError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutting down");
}

/// What the origin runs on, and how to switch, for the first lines of its log.
fn describe_layout(config: &Config, store: &dyn Store) {
    tracing::info!(
        store = store.kind(),
        at = %store.location(),
        "store: {}",
        match store.kind() {
            "sqlite" => "embedded SQLite (set DATABASE_URL=postgres://… for Postgres)",
            _ => "Postgres",
        }
    );
    match config.redis_url.as_deref().map(Layout::parse) {
        Some(Ok(layout)) => tracing::info!("cache layers: L1 memory, L2 Redis ({})", layout.name()),
        Some(Err(e)) => tracing::error!(error = %e, "REDIS_URL is not valid"),
        None => {
            tracing::info!("cache layers: L1 memory only (set REDIS_URL=redis://… to add L2 Redis)")
        }
    }
}

async fn serve(mut config: Config) -> Result<(), BoxError> {
    if config.jwt_secret.is_none() {
        let secret = random_secret()?;
        let demo = token(&secret, "admin".into(), vec!["*".into()], true, 86_400)?;
        tracing::warn!("JWT_SECRET is not set: using a random secret for this process only");
        println!("demo operator token (valid 24 h, this process only):\n{demo}");
        config.jwt_secret = Some(Secret(secret));
    }
    let store = store::open(&config).await?;
    describe_layout(&config, store.as_ref());
    match store.migrate().await {
        Ok(()) => seeding::seed_demo(&config, store.as_ref()).await,
        Err(e) => {
            tracing::error!(error = %e, "migrations not applied (is the database up?); serving what the caches hold")
        }
    }
    let app = Application::build(config.clone(), store).await?;
    tracing::info!(addr = %config.listen_addr, "origin listening; the admin panel is at /admin");
    app.run_until(shutdown_signal()).await?;
    Ok(())
}

/// glibc's allocator locks an arena to free memory another thread allocated, which a
/// request moved between the runtime's threads does all the time: under load the L1 hit
/// waited on those locks (futex calls per request 10x a bare server's). mimalloc frees
/// without them, in fewer instructions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    telemetry::init_logs();
    let cli = Cli::parse();
    let config = Config::from_settings(cli.settings)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            store::open(&config).await?.migrate().await?;
            Ok(())
        }
        Command::Seed {
            workspaces,
            contacts,
            boards,
            conversations,
            messages,
        } => {
            let history = seeding::History {
                conversations,
                messages,
            };
            let store = store::open(&config).await?;
            store.migrate().await?;
            for raw in workspaces {
                let ws = WorkspaceId::parse(&raw)?;
                let started = std::time::Instant::now();
                let (seeded, history) =
                    seeding::seed(&config, store.as_ref(), &ws, contacts, boards, history).await?;
                println!(
                    "seeded workspace {ws}: {} contacts on boards {:?}, {} messages in {} conversations in {:.1}s",
                    seeded.contacts,
                    seeded.boards,
                    history.messages,
                    history.conversations.len(),
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        Command::Bench { l1_entries, .. } if !l1_entries.is_empty() => {
            origin::bench::l1(&l1_entries, COUNTS_LIKE).await?;
            Ok(())
        }
        Command::Bench {
            workspace,
            iterations,
            ..
        } => {
            let mut config = config;
            config.jwt_secret = Some(Secret(random_secret()?));
            let store = store::open(&config).await?;
            let state = origin::build_state(config, store)?;
            origin::bench::run(&state, &WorkspaceId::parse(&workspace)?, iterations.max(1)).await?;
            Ok(())
        }
        Command::Counters {
            action: CountersAction::Check { workspace, repair },
        } => {
            let ws = workspace.as_deref().map(WorkspaceId::parse).transpose()?;
            let store = store::open(&config).await?;
            store.migrate().await?;
            let started = std::time::Instant::now();
            let drift = store.check_counters(ws.as_ref(), repair).await?;
            for d in &drift {
                println!("drift: {d}");
            }
            let scope = ws
                .as_ref()
                .map_or("all workspaces".to_owned(), |w| format!("workspace {w}"));
            println!(
                "counters of {scope}: {} row(s) drifted{} ({:.1}s)",
                drift.len(),
                if repair && !drift.is_empty() {
                    ", repaired"
                } else {
                    ""
                },
                started.elapsed().as_secs_f64()
            );
            if repair {
                let drifted: std::collections::BTreeSet<&str> =
                    drift.iter().map(|d| d.workspace.as_str()).collect();
                for w in drifted {
                    invalidation::changed_elsewhere(&config, &WorkspaceId::parse(w)?).await;
                }
            }
            if drift.is_empty() || repair {
                Ok(())
            } else {
                std::process::exit(1)
            }
        }
        Command::Token {
            user,
            workspaces,
            admin,
            ttl_secs,
        } => {
            let secret = config
                .jwt_secret
                .ok_or("JWT_SECRET is required to sign tokens")?;
            println!("{}", token(&secret.0, user, workspaces, admin, ttl_secs)?);
            Ok(())
        }
    }
}
