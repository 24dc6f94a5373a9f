//! The `aside` command-line client (`aside kv|cache|stats|reload`) run as a real
//! process against a real running Aside: output, `--json`, exit codes.

use std::path::Path;
use std::process::{Command, Stdio};

use aside_tests::{aside_bin, free_port, Aside, Origin, Reply, TOKEN};

/// What one client run printed and returned.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.stdout))
    }
}

/// Run the binary in an empty directory (no `conf/aside.toml` to find), with a clean
/// environment for the client's variables, stdin not a terminal.
async fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(aside_bin());
    cmd.args(args)
        .current_dir(dir)
        .env_remove("ASIDE_ADMIN")
        .env_remove("ASIDE_ADMIN_TOKEN")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run aside"))
        .await
        .expect("join");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run a client command against `aside`, address and token given as flags.
async fn client(aside: &Aside, args: &[&str]) -> Run {
    let admin = aside.admin.to_string();
    let mut all = args.to_vec();
    all.extend(["--admin", &admin, "--token", TOKEN]);
    let dir = tempfile::tempdir().expect("tempdir");
    run_in(dir.path(), &all, &[]).await
}

fn ok(run: &Run) {
    assert_eq!(run.code, 0, "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_names_the_address_and_exits_2() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["kv", "get", "x"],
        vec!["cache", "ls"],
        vec!["stats"],
        vec!["reload"],
    ] {
        let mut args = args;
        args.extend(["--admin", &addr, "--token", "t"]);
        let run = run_in(dir.path(), &args, &[]).await;
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(run.stderr.contains(&addr), "{args:?}: {run:?}");
        assert!(run.stdout.is_empty(), "{run:?}");
    }
    // The address may come from the environment as well.
    let run = run_in(
        dir.path(),
        &["kv", "ls"],
        &[("ASIDE_ADMIN", &addr), ("ASIDE_ADMIN_TOKEN", "t")],
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains(&addr), "{run:?}");
    // Usage errors: clap's and ours.
    let run = run_in(dir.path(), &["kv", "set", "k"], &[]).await;
    assert_eq!(run.code, 2, "{run:?}");
    let run = run_in(dir.path(), &["cache", "purge", "--admin", &addr], &[]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("purge what"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_round_trip_conditions_listing_and_exit_codes() {
    let origin = Origin::start(|_, _| Reply::ok("x")).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;

    // The JSON text comes back as the API keeps it: key order and number spelling
    // (`1.50`, `2e3`) intact, which a parse-and-print would lose.
    let value = r#"{"b":1,"a":[1.50,2e3,"é"]}"#;
    let set = client(&aside, &["kv", "set", "notes/one", value]).await;
    ok(&set);
    assert!(set.stdout.starts_with("set notes/one  version "), "{set:?}");
    let get = client(&aside, &["kv", "get", "notes/one"]).await;
    ok(&get);
    assert_eq!(get.stdout, format!("{value}\n"));

    let got = client(&aside, &["kv", "get", "notes/one", "--json"]).await;
    ok(&got);
    let item = got.json();
    assert_eq!(item["key"], "notes/one");
    assert_eq!(item["value"]["a"][0], 1.5);
    let version = item["version"].as_str().expect("version").to_owned();

    // Compare-and-swap: a stale version fails with exit 1 and the API's message.
    let conflict = client(
        &aside,
        &[
            "kv",
            "set",
            "notes/one",
            "2",
            "--if-version",
            "not-the-version",
        ],
    )
    .await;
    assert_eq!(conflict.code, 1, "{conflict:?}");
    assert!(conflict.stderr.contains("412"), "{conflict:?}");
    assert_eq!(
        client(&aside, &["kv", "get", "notes/one"]).await.stdout,
        format!("{value}\n"),
        "a failed condition changes nothing"
    );
    let swapped = client(
        &aside,
        &[
            "kv",
            "set",
            "notes/one",
            "\"two\"",
            "--if-version",
            &version,
            "--ttl",
            "1h",
            "--json",
        ],
    )
    .await;
    ok(&swapped);
    assert!(swapped.json()["expiresAt"].is_string(), "{swapped:?}");
    let absent_only = client(&aside, &["kv", "set", "notes/one", "3", "--if-absent"]).await;
    assert_eq!(absent_only.code, 1, "{absent_only:?}");

    // Not JSON: a usage error before any request.
    let bad = client(&aside, &["kv", "set", "notes/x", "plain text"]).await;
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("JSON"), "{bad:?}");

    // Listing, paging, get-many.
    ok(&client(&aside, &["kv", "set", "notes/two", "2"]).await);
    ok(&client(&aside, &["kv", "set", "other", "true"]).await);
    let ls = client(&aside, &["kv", "ls", "--prefix", "notes"]).await;
    ok(&ls);
    assert!(ls.stdout.starts_with("KEY"), "{ls:?}");
    assert!(
        ls.stdout.contains("notes/one") && ls.stdout.contains("notes/two"),
        "{ls:?}"
    );
    assert!(!ls.stdout.contains("other"), "{ls:?}");
    let page = client(&aside, &["kv", "ls", "--limit", "1", "--json"]).await;
    ok(&page);
    let page = page.json();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["total"], 3);
    let cursor = page["cursor"].as_str().expect("cursor").to_owned();
    let next = client(
        &aside,
        &["kv", "ls", "--limit", "1", "--cursor", &cursor, "--json"],
    )
    .await;
    ok(&next);
    assert_eq!(next.json()["items"][0]["key"], "notes/two");
    let all = client(&aside, &["kv", "ls", "--limit", "1", "--all", "--json"]).await;
    ok(&all);
    assert_eq!(all.json()["items"].as_array().unwrap().len(), 3);
    let reversed = client(&aside, &["kv", "ls", "--reverse", "--json"]).await;
    assert_eq!(reversed.json()["items"][0]["key"], "other");
    let many = client(&aside, &["kv", "get-many", "other", "missing", "--json"]).await;
    ok(&many);
    let many = many.json();
    assert_eq!(many["items"][0]["value"], true);
    assert!(many["items"][1].is_null());
    let table = client(&aside, &["kv", "get-many", "other", "missing"]).await;
    ok(&table);
    assert!(table.stdout.contains("(absent)"), "{table:?}");

    // Delete, then a 404: exit 1 with the API's message.
    let del = client(&aside, &["kv", "del", "notes/one"]).await;
    ok(&del);
    let gone = client(&aside, &["kv", "get", "notes/one"]).await;
    assert_eq!(gone.code, 1, "{gone:?}");
    assert!(gone.stderr.contains("no item with key"), "{gone:?}");
    assert!(gone.stdout.is_empty(), "{gone:?}");

    // A wrong token: the API's 401 message, exit 2 (the command cannot succeed as given).
    let dir = tempfile::tempdir().unwrap();
    let admin = aside.admin.to_string();
    let denied = run_in(
        dir.path(),
        &["kv", "get", "other", "--admin", &admin, "--token", "wrong"],
        &[],
    )
    .await;
    assert_eq!(denied.code, 2, "{denied:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_ls_show_and_purge() {
    let origin = Origin::start(|seen, _| {
        let tag = if seen.uri.starts_with("/v1/") {
            "v1"
        } else {
            "rest"
        };
        Reply::ok(format!("body of {}", seen.uri))
            .header("cache-control", "max-age=300")
            .header("cache-tag", tag)
            .header("x-origin", "yes")
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    for path in ["/v1/a", "/v1/b", "/other"] {
        assert_eq!(aside.get(path).await.x_cache(), "MISS");
        assert_eq!(aside.get(path).await.x_cache(), "HIT");
    }

    let ls = client(&aside, &["cache", "ls", "--json"]).await;
    ok(&ls);
    let entries = ls.json()["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 3, "{entries:?}");
    let v1 = aside.url("/v1/");
    let ls = client(&aside, &["cache", "ls", "--prefix", &v1]).await;
    ok(&ls);
    assert!(ls.stdout.starts_with("STATUS"), "{ls:?}");
    assert!(ls.stdout.contains(&aside.url("/v1/a")), "{ls:?}");
    assert!(!ls.stdout.contains(&aside.url("/other")), "{ls:?}");
    assert!(ls.stdout.contains("(2 entries)"), "{ls:?}");
    let tagged = client(&aside, &["cache", "ls", "--tag", "rest", "--json"]).await;
    assert_eq!(tagged.json()["entries"].as_array().unwrap().len(), 1);

    let show = client(&aside, &["cache", "show", &aside.url("/v1/a"), "--body"]).await;
    ok(&show);
    assert!(show.stdout.contains("x-origin: yes"), "{show:?}");
    assert!(show.stdout.contains("body of /v1/a"), "{show:?}");
    let shown = client(&aside, &["cache", "show", &aside.url("/v1/a"), "--json"]).await;
    assert_eq!(shown.json()["entries"][0]["status"], 200);
    let missing = client(&aside, &["cache", "show", &aside.url("/nothing")]).await;
    assert_eq!(missing.code, 1, "{missing:?}");

    let dry = client(&aside, &["cache", "purge", "--prefix", &v1, "--dry-run"]).await;
    ok(&dry);
    assert_eq!(dry.stdout.trim(), "would purge 2 entries");
    assert_eq!(
        aside.get("/v1/a").await.x_cache(),
        "HIT",
        "a dry run purges nothing"
    );
    let purged = client(&aside, &["cache", "purge", "--prefix", &v1]).await;
    ok(&purged);
    assert!(purged.stdout.contains("purged 2 entries"), "{purged:?}");
    assert_eq!(aside.get("/v1/a").await.x_cache(), "MISS");
    assert_eq!(aside.get("/other").await.x_cache(), "HIT");

    // By URL, JSON answer.
    let one = client(&aside, &["cache", "purge", &aside.url("/other"), "--json"]).await;
    ok(&one);
    assert_eq!(one.json()["purged"], 1);

    // --all on a non-terminal without --yes refuses and purges nothing; with --yes it goes.
    let refused = client(&aside, &["cache", "purge", "--all"]).await;
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("--yes"), "{refused:?}");
    assert!(
        refused.stderr.contains("1 cached entries match"),
        "{refused:?}"
    );
    assert_eq!(aside.get("/v1/a").await.x_cache(), "HIT");
    let all = client(&aside, &["cache", "purge", "--all", "--yes"]).await;
    ok(&all);
    assert!(all.stdout.contains("purged 1 entries"), "{all:?}");
    assert_eq!(aside.get("/v1/a").await.x_cache(), "MISS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_watch_and_reload() {
    let origin = Origin::start(|_, _| Reply::ok("s").header("cache-control", "max-age=60")).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    aside.get("/s").await;
    aside.get("/s").await;
    aside.get("/s").await;

    let stats = client(&aside, &["stats"]).await;
    ok(&stats);
    for needle in [
        "health ok",
        "REQUESTS",
        "hit ",
        "miss ",
        "UPSTREAM",
        "STORE",
        "hit ratio 66.7%",
    ] {
        assert!(stats.stdout.contains(needle), "{needle}: {}", stats.stdout);
    }
    let json = client(&aside, &["stats", "--json"]).await;
    ok(&json);
    let summary = json.json();
    assert_eq!(summary["requests"]["hit"], 2);
    assert_eq!(summary["requests"]["miss"], 1);
    assert_eq!(summary["upstreams"]["origin"]["requests"], 1);
    assert!(summary["store"]["hot"]["entries"].is_u64(), "{summary}");

    // Bounded watch: two screens, the second with rates.
    let watch = client(&aside, &["stats", "--watch", "1", "--count", "2"]).await;
    ok(&watch);
    assert_eq!(watch.stdout.matches("health ok").count(), 2, "{watch:?}");
    assert!(watch.stdout.contains("0.0/s"), "{watch:?}");

    let reload = client(&aside, &["reload"]).await;
    ok(&reload);
    assert!(reload.stdout.starts_with("reloaded"), "{reload:?}");
    std::fs::write(&aside.config_path, "[server]\nnot-a-key = 1\n").unwrap();
    let bad = client(&aside, &["reload"]).await;
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("not-a-key"), "{bad:?}");
}

/// On the Aside host nothing needs to be given: the config file names the admin
/// address and where the token is (a file, or the one generated in the data directory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_and_token_come_from_the_config_file() {
    let origin = Origin::start(|_, _| Reply::ok("c")).await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;
    ok(&client(&aside, &["kv", "set", "conf", "1"]).await);
    let started = std::fs::read_to_string(&aside.config_path).unwrap();
    let work = tempfile::tempdir().unwrap();

    // The harness starts Aside on port 0: a file naming port 0 is refused with
    // what to do; the client reads the port from a file that names it.
    let zero = work.path().join("zero.toml");
    std::fs::write(&zero, &started).unwrap();
    let run = run_in(
        work.path(),
        &["--config", zero.to_str().unwrap(), "stats"],
        &[],
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("give --admin ADDR"), "{run:?}");
    let config = started.replace(
        "[admin]\nlisten = \"127.0.0.1:0\"",
        &format!("[admin]\nlisten = \"{}\"", aside.admin),
    );
    assert_ne!(config, started);

    // token-file
    let token_file = work.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let with_file = config.replace(
        "token-env = \"ASIDE_ADMIN_TOKEN\"",
        &format!("token-file = \"{}\"", token_file.display()),
    );
    let file_conf = work.path().join("file.toml");
    std::fs::write(&file_conf, with_file).unwrap();
    let file_conf = file_conf.to_str().unwrap();
    for args in [
        vec!["--config", file_conf, "kv", "get", "conf"],
        vec!["kv", "get", "conf", "--config", file_conf],
    ] {
        let run = run_in(work.path(), &args, &[]).await;
        ok(&run);
        assert_eq!(run.stdout, "1\n");
    }

    // No token configured: the server generates one in its data directory; the
    // client reads it there. Found as conf/aside.toml in the working directory.
    std::fs::write(aside.dir.path().join("admin-token"), format!("{TOKEN}\n")).unwrap();
    std::fs::create_dir(work.path().join("conf")).unwrap();
    std::fs::write(
        work.path().join("conf/aside.toml"),
        config.replace("token-env = \"ASIDE_ADMIN_TOKEN\"", ""),
    )
    .unwrap();
    let run = run_in(work.path(), &["kv", "get", "conf"], &[]).await;
    ok(&run);
    assert_eq!(run.stdout, "1\n");
    let run = run_in(
        work.path(),
        &["cache", "purge", "--prefix", &aside.url("/")],
        &[],
    )
    .await;
    ok(&run);

    // An explicit config file that does not exist is a usage error naming it.
    let run = run_in(work.path(), &["--config", "nope.toml", "stats"], &[]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("nope.toml"), "{run:?}");
}

#[tokio::test]
async fn warm_fetches_urls_with_progress_and_exit_codes() {
    let origin = Origin::start(|s, _| {
        Reply::ok(format!("w {}", s.uri)).header("cache-control", "max-age=60")
    })
    .await;
    let aside = Aside::builder().upstream(&origin.url()).start().await;

    let run = client(
        &aside,
        &["warm", "http://warm.test/a", "http://warm.test/b"],
    )
    .await;
    ok(&run);
    assert!(
        run.stdout.contains("2 ok, 0 failed, 0 skipped of 2"),
        "{run:?}"
    );
    assert!(run.stderr.contains("warming: 2/2 done"), "{run:?}");
    assert_eq!(origin.hits(), 2);
    let hit = aside.request("GET", "/a", &[("host", "warm.test")]).await;
    assert_eq!(hit.x_cache(), "HIT");

    // --json gives the job; a URL file works; https is skipped, not failed.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("urls.txt");
    std::fs::write(
        &file,
        "# warm these\nhttp://warm.test/c\n\nhttps://warm.test/d\n",
    )
    .unwrap();
    let run = client(
        &aside,
        &["warm", "--json", "--file", file.to_str().unwrap()],
    )
    .await;
    ok(&run);
    let job = run.json();
    assert_eq!(job["state"], "done");
    assert_eq!(
        (job["ok"].as_u64(), job["skipped"].as_u64()),
        (Some(1), Some(1))
    );

    // A failed URL exits 1; no URL at all is a usage error (2).
    let failing = Origin::start(|_, _| Reply::status(500, "no")).await;
    let broken = Aside::builder()
        .upstream(&failing.url())
        .upstream_extra("breaker-failures = 0")
        .start()
        .await;
    let run = client(&broken, &["warm", "http://warm.test/x"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("1 of 1 URLs failed"), "{run:?}");
    let run = client(&aside, &["warm"]).await;
    assert_eq!(run.code, 2, "{run:?}");
}
