//! The `crowdwall` command's pieces: [`args`] (the clap definitions), [`status`] (text
//! renderers), [`replay`] (replay and explain), [`bouncers`], [`community`] (enrolment with a
//! hub), [`ui`] (colour and progress, only on a terminal). anyhow lives here and in the
//! binaries only; the crates below have their own error enums.

pub mod args;
pub mod bouncers;
pub mod community;
pub mod log;
pub mod replay;
pub mod status;
pub mod ui;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::CommandFactory;

use crowdwall_daemon::config::Config;
use crowdwall_daemon::control::{self, Request, Response};

use args::Cli;

pub fn load_config(path: &Path) -> Result<Config> {
    Ok(Config::load(path)?)
}

/// The daemon's socket: --socket, else the config's `[daemon] socket`, read even from a
/// file that does not validate (the daemon says what is wrong with it: `crowdwall reload`).
pub fn socket_of(cli_socket: &Option<PathBuf>, config: &Path) -> Result<PathBuf> {
    if let Some(s) = cli_socket {
        return Ok(s.clone());
    }
    Ok(crowdwall_daemon::config::socket_of(config))
}

pub fn call(socket: &Path, req: Request) -> Result<serde_json::Value> {
    match control::call(socket, &req)? {
        Response::Ok(v) => Ok(v),
        Response::Error(m) => bail!("{m}"),
    }
}

/// Man page and completions from the same clap definitions as `--help`.
pub fn generate(out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let cmd = Cli::command();
    // crowdwall.1 names every subcommand's page in SEE ALSO (crowdwall-decisions(1)...):
    // all of them are written, so each reference resolves (the packages install them all).
    clap_mangen::generate_to(cmd.clone(), out)
        .with_context(|| format!("writing the man pages into {}", out.display()))?;
    let man = out.join("crowdwall.1");
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        let path = clap_complete::generate_to(shell, &mut cmd.clone(), "crowdwall", out)
            .with_context(|| format!("writing {shell} completions into {}", out.display()))?;
        println!("{}", path.display());
    }
    println!("{}", man.display());
    Ok(())
}

pub fn import_fail2ban(dir: &Path) -> Result<()> {
    // fail2ban's reading order: jail.conf, jail.d/*.conf, jail.local, jail.d/*.local.
    let mut paths = Vec::new();
    let sorted = |ext: &str| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("jail.d"))
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == ext))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    // jail.conf's [INCLUDES]: the distribution's log paths (`%(sshd_log)s`).
    for p in ["paths-common.conf", "paths-debian.conf"] {
        paths.push(dir.join(p));
    }
    paths.push(dir.join("jail.conf"));
    paths.extend(sorted("conf"));
    paths.push(dir.join("jail.local"));
    paths.extend(sorted("local"));
    let mut files = Vec::new();
    for p in paths {
        match std::fs::read_to_string(&p) {
            Ok(t) => files.push((p.display().to_string(), t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => bail!("{}: {e}", p.display()),
        }
    }
    if files.is_empty() {
        bail!(
            "{}: no jail.conf, jail.local or jail.d/*.conf|local: is this fail2ban's configuration directory?",
            dir.display()
        );
    }
    let mut c = crowdwall_engine::fail2ban::convert(&files);
    // Jails crowdwall has no parser for run as they are, if their filters load here.
    if !c.fail2ban_jails.is_empty() {
        use crowdwall_engine::fail2ban::jail;
        let src = |p: &str| std::fs::read_to_string(dir.join(p)).ok();
        let jail_d: Vec<String> = std::fs::read_dir(dir.join("jail.d"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().to_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let ini = jail::read_jails(&src, &jail_d);
        let mut ok = Vec::new();
        for name in &c.fail2ban_jails {
            match jail::load_jail(&src, &ini, name) {
                Ok(j) => {
                    for n in &j.notes {
                        c.notes.push(format!("jail [{name}]: {n}"));
                    }
                    c.converted_jails.push((
                        name.clone(),
                        format!("fail2ban filter {} as f2b:{name}", j.filter_name),
                    ));
                    ok.push(format!("\"{name}\""));
                }
                Err(e) => c
                    .notes
                    .push(format!("jail [{name}]: could not convert: {e}")),
            }
        }
        if !ok.is_empty() {
            c.toml.push_str(&format!(
                "# Jails crowdwall has no parser of its own for, run as they are: their filters are\n# read from filter.d (.conf, .local), logpath and backend from the jail files.\n[fail2ban]\ndir = \"{}\"\njails = [{}]\n",
                dir.display(),
                ok.join(", ")
            ));
        }
    }
    // The output must be a configuration crowdwall accepts.
    Config::parse(&c.toml, Path::new("<converted>")).context(
        "the converted configuration does not validate (a crowdwall bug: please report it)",
    )?;
    print!("{}", c.toml);
    eprintln!(
        "read {} file(s); converted {} jail(s): {}",
        files.len(),
        c.converted_jails.len(),
        c.converted_jails
            .iter()
            .map(|(j, s)| format!("{j} -> {s}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for n in &c.info {
        eprintln!("note: {n}");
    }
    for n in &c.notes {
        eprintln!("not converted: {n}");
    }
    Ok(())
}
