//! The `vmail` command: wiring only. See `vmail --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use vmail::config::{Config, VmailRole};
use vmail::mailbox_ops::{self as ops, PinRule};
use vmail::retention::{Rule, Scope};
use vmail::routing::{Owner, RoutingTable};
use vmail::store::{Folder, FsStore, MailboxId, MailboxSettings};

/// mimalloc rather than glibc's malloc: glibc returns freed memory only
/// from the top of an arena, so after a burst (thousands of TCP connections
/// with unfinished messages, parallel PIN hashes) freed pages below a live
/// allocation stay resident for good; mimalloc purges freed pages (10 ms
/// after its next activity) and keeps idle RSS as low. `malloc_trim` would
/// need unsafe code, which the crate forbids. `no_thp`: no transparent huge
/// pages, which would inflate RSS by whole 2 MiB pages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The embedded default configuration (`config/vmail.json`).
const DEFAULT_CONFIG: &str = include_str!("../config/vmail.json");

#[derive(Parser, Debug)]
#[command(
    name = "vmail",
    version,
    about = "Voicemail media server for SIP networks"
)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one vmail instance.
    Run {
        /// Site configuration file (default: the embedded config/vmail.json).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The instance to run (may be left out when the file has one enabled vmail instance).
        #[arg(long)]
        name: Option<String>,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the group that owns DOMAIN and its instances.
    Route {
        /// Site configuration file.
        file: PathBuf,
        /// Domain to look up.
        domain: String,
    },
    /// Manage mailboxes in the instance's SiteShare store.
    Mailbox {
        /// Site configuration file (default: the embedded config/vmail.json).
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        /// The instance whose store to use.
        #[arg(long, global = true)]
        name: Option<String>,
        #[command(subcommand)]
        command: MailboxCommand,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate FILE and print the routing table.
    Check {
        /// Site configuration file.
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum MailboxCommand {
    /// Create a mailbox.
    Add {
        /// user@domain
        mailbox: String,
        /// Initial PIN (digits).
        #[arg(long)]
        pin: Option<String>,
        /// Display name.
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List mailboxes (of one domain, or all).
    List {
        /// Only this domain.
        domain: Option<String>,
    },
    /// Remove a mailbox and all its messages.
    Remove {
        /// user@domain
        mailbox: String,
    },
    /// Show a mailbox: settings, message counts, PIN lockout.
    Show {
        /// user@domain
        mailbox: String,
    },
    /// Clear the PIN failures and lock of a locked-out mailbox.
    Unlock {
        /// user@domain
        mailbox: String,
    },
    /// Set the PIN of a mailbox.
    SetPin {
        /// user@domain
        mailbox: String,
        /// New PIN (digits).
        pin: String,
    },
    /// Remove expired messages now: by `ext.retention` and the mailboxes'
    /// own settings, or with --older-than by age alone.
    Purge {
        /// Only the mailboxes of this domain.
        #[arg(long)]
        domain: Option<String>,
        /// Only this user of --domain.
        #[arg(long, requires = "domain")]
        user: Option<String>,
        /// Remove the messages older than DAYS (0: every message) of the
        /// --folder folders instead of applying ext.retention.
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(0..=36500))]
        older_than: Option<u32>,
        /// Folder for --older-than (INBOX, Old, Work, Family, Friends,
        /// Cust1..Cust5); may be repeated; default Old.
        #[arg(long, requires = "older_than")]
        folder: Vec<String>,
        /// List what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Change the e-mail notification and operator settings of a mailbox.
    Set {
        /// user@domain
        mailbox: String,
        /// Where new messages are e-mailed: one address or a
        /// comma-separated list; "" turns e-mail off.
        #[arg(long)]
        email: Option<String>,
        /// What the e-mail carries: wav (the message's audio as stored),
        /// opus (the audio compressed, Opus in Ogg) or none.
        #[arg(long, value_parser = ["none", "wav", "opus"])]
        attach: Option<String>,
        /// Delete the message from the store once e-mailed.
        #[arg(long)]
        delete_after_send: Option<bool>,
        /// Where 0 during the greeting or recording transfers the caller:
        /// a sip: or sips: URI; "none" turns the transfer off for this
        /// mailbox; "" goes back to the domain's ext.operator_uri.
        #[arg(long)]
        operator: Option<String>,
        /// Time zone of the dates and times said, shown and e-mailed: an
        /// IANA zone name such as Europe/Moscow, UTC, or an offset such as
        /// +03:00; "" goes back to ext.timezone.
        #[arg(long)]
        timezone: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    vmail::logging::init(cli.log_format == LogFormat::Json);
    match cli.command {
        Command::Run { config, name } => run(config, name),
        Command::Config {
            command: ConfigCommand::Check { file },
        } => config_check(&file),
        Command::Route { file, domain } => route(&file, &domain),
        Command::Mailbox {
            config,
            name,
            command,
        } => mailbox(config, name, command),
    }
}

/// Exit status for configuration errors (SPEC §2).
const EXIT_CONFIG: u8 = 2;

fn load(file: Option<&PathBuf>) -> Result<Config, ExitCode> {
    let loaded = match file {
        Some(path) => Config::load(path),
        None => Config::parse(DEFAULT_CONFIG),
    };
    loaded.map_err(|errors| {
        let origin = file.map_or_else(
            || "embedded config/vmail.json".to_owned(),
            |p| p.display().to_string(),
        );
        eprintln!("{origin}: configuration is invalid:\n{errors}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn select<'a>(config: &'a Config, name: Option<&str>) -> Result<&'a VmailRole, ExitCode> {
    config.select(name).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn routing_table(config: &Config) -> Result<RoutingTable, ExitCode> {
    let groups = config.groups();
    RoutingTable::new(
        groups
            .iter()
            .map(|(g, info)| (*g, info.include_domains.iter().map(String::as_str))),
    )
    .map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn run(file: Option<PathBuf>, name: Option<String>) -> ExitCode {
    let config = match load(file.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let role = match select(&config, name.as_deref()) {
        Ok(r) => r.clone(),
        Err(code) => return code,
    };
    match vmail::runtime::run(config, role, file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("vmail stopped: {e}");
            eprintln!("vmail: {e}");
            ExitCode::FAILURE
        }
    }
}

fn config_check(file: &PathBuf) -> ExitCode {
    let config = match load(Some(file)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(code) = routing_table(&config) {
        return code;
    }
    println!("{}: valid (site {})", file.display(), config.site);
    println!();
    print!("{}", describe(&config));
    ExitCode::SUCCESS
}

/// The routing table in words: groups, instances by order, domains served.
fn describe(config: &Config) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for (group, info) in config.groups() {
        let domains = if info.include_domains.is_empty() {
            "(default group: every domain no other group claims)".to_owned()
        } else {
            info.include_domains.join(", ")
        };
        let _ = writeln!(out, "group {group}: {domains}");
        for inst in &info.instances {
            let _ = writeln!(
                out,
                "  order {:>3}  {:<16} {:<15} sip {:<5} http {}",
                inst.order, inst.name, inst.addr, inst.ext.sip_port, inst.ext.http_port
            );
        }
    }
    for role in &config.roles {
        match role {
            vmail::config::Role::Disabled { index, name, .. } => {
                let _ = writeln!(
                    out,
                    "disabled: roles[{index}] {}",
                    name.as_deref().unwrap_or("(no name)")
                );
            }
            vmail::config::Role::Other {
                index,
                name,
                roletype,
                ..
            } => {
                let _ = writeln!(
                    out,
                    "other role: roles[{index}] {} ({roletype}), not used by vmail",
                    name.as_deref().unwrap_or("(no name)")
                );
            }
            _ => {}
        }
    }
    out
}

fn route(file: &PathBuf, domain: &str) -> ExitCode {
    let config = match load(Some(file)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let table = match routing_table(&config) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let normalized = match vmail::config::normalize_domain(domain) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("`{domain}` is not a valid domain name: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let Some(owner) = table.owner(&normalized) else {
        println!("{normalized}: not served by any group (404 domain not served)");
        return ExitCode::from(1);
    };
    let how = match owner {
        Owner::Listed { .. } => "listed",
        Owner::Default { .. } => "default group",
    };
    println!("{normalized}: group {} ({how})", owner.group());
    if let Some(info) = config.groups().get(&owner.group()) {
        for inst in &info.instances {
            println!(
                "  order {:>3}  {:<16} {}  sip {}  http {}",
                inst.order, inst.name, inst.addr, inst.ext.sip_port, inst.ext.http_port
            );
        }
    }
    ExitCode::SUCCESS
}

fn mailbox(file: Option<PathBuf>, name: Option<String>, command: MailboxCommand) -> ExitCode {
    let config = match load(file.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let role = match select(&config, name.as_deref()) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let store = match FsStore::open(&role.ext.siteshare) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot open the store: {e}");
            return ExitCode::FAILURE;
        }
    };
    let parse = |s: &str| {
        MailboxId::parse(s).map_err(|e| {
            eprintln!("`{s}`: {e}");
            ExitCode::from(EXIT_CONFIG)
        })
    };
    let result = match command {
        MailboxCommand::Add {
            mailbox,
            pin,
            display_name,
        } => {
            let id = match parse(&mailbox) {
                Ok(id) => id,
                Err(code) => return code,
            };
            let settings = MailboxSettings {
                display_name,
                ..MailboxSettings::default()
            };
            ops::create(&store, &id, settings, pin.as_deref(), PinRule::Store)
                .map(|_| println!("created {}@{}", id.user(), id.domain()))
        }
        MailboxCommand::List { domain } => ops::list(&store, domain.as_deref()).map(|ids| {
            for id in ids {
                let counts = store.counts(&id);
                match counts {
                    Ok(c) => println!(
                        "{}@{}  new {}  old {}",
                        id.user(),
                        id.domain(),
                        c.new,
                        c.old
                    ),
                    Err(_) => println!("{}@{}", id.user(), id.domain()),
                }
            }
        }),
        MailboxCommand::Remove { mailbox } => {
            let id = match parse(&mailbox) {
                Ok(id) => id,
                Err(code) => return code,
            };
            ops::remove(&store, &id).map(|()| println!("removed {}@{}", id.user(), id.domain()))
        }
        MailboxCommand::Show { mailbox } => {
            let id = match parse(&mailbox) {
                Ok(id) => id,
                Err(code) => return code,
            };
            ops::view(&store, &id).map(|v| {
                let s = &v.mailbox.settings;
                let or_none = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
                println!("{}@{}", id.user(), id.domain());
                println!("  display name  {}", or_none(&s.display_name));
                println!("  language      {}", or_none(&s.language));
                println!("  time zone     {}", or_none(&s.timezone));
                println!("  e-mail        {}", or_none(&s.email));
                if s.email.is_some() {
                    let attach = match s.attach.unwrap_or(vmail::store::Attach::Wav) {
                        vmail::store::Attach::None => "none",
                        vmail::store::Attach::Wav => "wav",
                        vmail::store::Attach::Opus => "opus",
                    };
                    println!("  attach        {attach}");
                    println!(
                        "  delete after send  {}",
                        if s.delete_after_send { "yes" } else { "no" }
                    );
                }
                println!(
                    "  operator      {}",
                    s.operator.as_deref().unwrap_or("(domain setting)")
                );
                println!(
                    "  max messages  {}",
                    s.max_messages
                        .map_or_else(|| "(instance setting)".into(), |n| n.to_string())
                );
                println!(
                    "  PIN set       {}",
                    if v.mailbox.has_pin { "yes" } else { "no" }
                );
                println!(
                    "  retention     {}",
                    s.retention_old_days.map_or_else(
                        || "(ext.retention)".into(),
                        |d| if d == 0 {
                            "Old kept for ever".to_string()
                        } else {
                            format!("Old kept {d} days")
                        }
                    )
                );
                println!("  created       {}", v.mailbox.created);
                println!("  messages      new {}  old {}", v.counts.new, v.counts.old);
                if let Ok(per) = store.folder_counts(&id) {
                    let saved: Vec<String> = per
                        .iter()
                        .filter(|(f, n)| *n > 0 && !matches!(f, Folder::Inbox | Folder::Old))
                        .map(|(f, n)| format!("{f} {n}"))
                        .collect();
                    if !saved.is_empty() {
                        println!("  folders       {}", saved.join("  "));
                    }
                }
                match ops::locked_until(&v.login, std::time::SystemTime::now()) {
                    Some(t) => println!("  locked until  {t}"),
                    None => println!("  PIN failures  {}", v.login.failures),
                }
            })
        }
        MailboxCommand::Unlock { mailbox } => {
            let id = match parse(&mailbox) {
                Ok(id) => id,
                Err(code) => return code,
            };
            ops::unlock(&store, &id).map(|()| println!("unlocked {}@{}", id.user(), id.domain()))
        }
        MailboxCommand::Purge {
            domain,
            user,
            older_than,
            folder,
            dry_run,
        } => {
            let rule = match older_than {
                Some(days) => {
                    let mut folders = Vec::new();
                    for f in &folder {
                        match Folder::parse(f) {
                            Some(f) if !folders.contains(&f) => folders.push(f),
                            Some(_) => {}
                            None => {
                                eprintln!("`{f}`: not a folder (INBOX, Old, Work, Family, Friends, Cust1 to Cust5)");
                                return ExitCode::from(EXIT_CONFIG);
                            }
                        }
                    }
                    if folders.is_empty() {
                        folders.push(Folder::Old);
                    }
                    Rule::OlderThan { days, folders }
                }
                None => {
                    if role.ext.retention.is_off() {
                        println!("ext.retention expires nothing; only mailboxes with their own retention_old_days are looked at");
                    }
                    Rule::Policy(role.ext.retention.clone())
                }
            };
            let scope = Scope {
                domain,
                user,
                domain_filter: None,
            };
            ops::purge(&store, &scope, &rule, std::time::SystemTime::now(), dry_run).map(
                |expired| {
                    let verb = if dry_run { "would remove" } else { "removed" };
                    for e in &expired {
                        println!(
                            "{verb} {}@{} {}/{} received {} ({} days old)",
                            e.mailbox.user(),
                            e.mailbox.domain(),
                            e.folder,
                            e.id,
                            e.received,
                            e.age_days
                        );
                    }
                    let n = expired.len();
                    if dry_run {
                        println!("{n} message(s) would be removed (dry run: nothing removed)");
                    } else {
                        println!("{n} message(s) removed");
                    }
                },
            )
        }
        MailboxCommand::Set {
            mailbox,
            email,
            attach,
            delete_after_send,
            operator,
            timezone,
        } => {
            let id = match parse(&mailbox) {
                Ok(id) => id,
                Err(code) => return code,
            };
            ops::update(&store, &id, |s| {
                if let Some(e) = email {
                    s.email = Some(e.trim().to_string()).filter(|e| !e.is_empty());
                }
                if let Some(a) = attach.as_deref().and_then(vmail::store::Attach::parse) {
                    s.attach = Some(a);
                }
                if let Some(d) = delete_after_send {
                    s.delete_after_send = d;
                }
                if let Some(o) = operator {
                    s.operator = Some(o.trim().to_string()).filter(|o| !o.is_empty());
                }
                if let Some(tz) = timezone {
                    s.timezone = Some(tz.trim().to_string()).filter(|t| !t.is_empty());
                }
            })
            .map(|m| {
                println!(
                    "{}@{}: e-mail {}, attach {}, delete after send {}, operator {}, time zone {}",
                    id.user(),
                    id.domain(),
                    m.settings.email.as_deref().unwrap_or("-"),
                    match m.settings.attach.unwrap_or(vmail::store::Attach::Wav) {
                        vmail::store::Attach::None => "none",
                        vmail::store::Attach::Wav => "wav",
                        vmail::store::Attach::Opus => "opus",
                    },
                    if m.settings.delete_after_send {
                        "yes"
                    } else {
                        "no"
                    },
                    m.settings.operator.as_deref().unwrap_or("(domain setting)"),
                    m.settings.timezone.as_deref().unwrap_or("(ext.timezone)")
                )
            })
        }
        MailboxCommand::SetPin { mailbox, pin } => {
            let id = match parse(&mailbox) {
                Ok(id) => id,
                Err(code) => return code,
            };
            ops::set_pin(&store, &id, &pin, PinRule::Store)
                .map(|()| println!("PIN set for {}@{}", id.user(), id.domain()))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
