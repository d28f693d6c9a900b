//! The web console in a real headless browser (Chromium): served by a real
//! `wfhost serve`, it lists a workflow a test started and opens its history
//! as a timeline. Screenshots of both views are saved under the target
//! directory (`tmp/console-*.png`), for people to look at.

mod support;

use std::process::Command;

use support::{Server, tool};

/// The page `url` as Chromium rendered it once its scripts settled.
fn rendered(chromium: &str, url: &str, screenshot: &std::path::Path) -> String {
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1280,800",
        // Virtual time runs the page's fetches and timers to the end.
        "--virtual-time-budget=10000",
    ];
    let dom = Command::new(chromium)
        .args(common)
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("running chromium");
    assert!(
        dom.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let shot = Command::new(chromium)
        .args(common)
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(url)
        .output()
        .expect("running chromium");
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    assert!(
        std::fs::metadata(screenshot).is_ok_and(|m| m.len() > 1000),
        "no screenshot at {}",
        screenshot.display()
    );
    String::from_utf8_lossy(&dom.stdout).into_owned()
}

#[tokio::test]
async fn the_console_lists_a_workflow_and_shows_its_history_in_a_browser() {
    let Some(chromium) = tool("chromium") else {
        return;
    };
    let server = Server::with_store(&["--store", "memory"], wf_test_artifacts::PIPELINE, &[]);
    let http = reqwest::Client::new();
    for id in ["console-1", "console-2"] {
        let done = http
            .post(format!("{}/workflows/{id}", server.url))
            .body(r#""start processing""#)
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), 200);
    }
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let chromium_list = chromium.clone();
    let list_url = format!("{}/ui/#/", server.url);
    let list_shot = shots.join("console-list.png");
    let list = tokio::task::spawn_blocking(move || rendered(&chromium_list, &list_url, &list_shot))
        .await
        .unwrap();
    assert!(list.contains(r#"data-loaded="list""#), "{list}");
    for id in ["console-1", "console-2"] {
        assert!(
            list.contains(&format!(r#"data-workflow-id="{id}""#)),
            "{id} is not listed: {list}"
        );
    }
    let detail_url = format!("{}/ui/#/workflows/console-1", server.url);
    let detail_shot = shots.join("console-detail.png");
    let detail =
        tokio::task::spawn_blocking(move || rendered(&chromium, &detail_url, &detail_shot))
            .await
            .unwrap();
    assert!(detail.contains(r#"data-loaded="detail""#), "{detail}");
    assert!(detail.contains(r#"id="workflow-detail""#), "{detail}");
    assert!(detail.contains(r#"data-status="completed""#), "{detail}");
    for event in [
        "workflow_started",
        "activity_completed",
        "workflow_completed",
    ] {
        assert!(
            detail.contains(&format!(r#"data-event-type="{event}""#)),
            "no {event} in the timeline: {detail}"
        );
    }
    eprintln!("screenshots: {}", shots.display());
}
