//! Ingest and its supervisor against a real RTSP server (gst-rtsp-server, the
//! `rtsp_server` example of this crate) on 127.0.0.1, started and killed by the
//! tests as a child process.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streetscope_contracts::{Frame, Letterbox};
use streetscope_ingest::{run_camera, CameraSource, CameraState, RestartPolicy, StopHandle, SupervisedCamera};

/// The `rtsp_server` example. `cargo test` builds the examples of the package
/// next to the tests (`target/<profile>/examples/`); when a narrower `cargo test`
/// did not, it is built here.
fn server_bin() -> PathBuf {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join("examples").join(format!("rtsp_server{}", std::env::consts::EXE_SUFFIX));
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !bin.exists() && !*built {
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", "streetscope-ingest", "--example", "rtsp_server"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo to build the rtsp_server example");
        assert!(status.success(), "building the rtsp_server example failed");
        *built = true;
    }
    assert!(bin.exists(), "{} is missing: cargo build --example rtsp_server", bin.display());
    bin
}

/// A running `rtsp_server`; killed when dropped.
struct Server {
    child: Child,
    url: String,
    port: u16,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(server_bin())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting rtsp_server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("reading the server's URL");
        let url = line.trim().to_owned();
        assert!(url.starts_with("rtsp://127.0.0.1:"), "rtsp_server said {url:?}");
        let port = url["rtsp://127.0.0.1:".len()..].split('/').next().unwrap().parse().unwrap();
        Server { child, url, port }
    }

    /// The URL with `user:password@` in it.
    fn url_with(&self, user: &str, password: &str) -> String {
        self.url.replacen("rtsp://", &format!("rtsp://{user}:{password}@"), 1)
    }

    fn kill(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn camera(id: &str, source: &str) -> CameraSource {
    CameraSource {
        camera_id: id.into(),
        intersection_id: "x-1".into(),
        source: source.into(),
        sample_fps: 5.0,
        width: 160,
        height: 160,
        stall_timeout: Duration::from_secs(3),
        keyframes_only: false,
        jpeg_quality: None,
        rtsp_transport: Default::default(),
        template: None,
    }
}

/// Quick retries, so that the tests run in seconds.
fn quick() -> RestartPolicy {
    RestartPolicy {
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(1),
        multiplier: 2.0,
        jitter: 0.2,
        ..RestartPolicy::default()
    }
}

/// Frames with their arrival time.
#[derive(Clone, Default)]
struct Collected(Arc<Mutex<Vec<(Instant, Frame)>>>);

impl Collected {
    fn sink(&self) -> impl Fn(Frame) -> bool + Send + Sync + 'static {
        let frames = self.0.clone();
        move |f| {
            frames.lock().unwrap().push((Instant::now(), f));
            true
        }
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn seqs(&self) -> Vec<u64> {
        self.0.lock().unwrap().iter().map(|(_, f)| f.seq).collect()
    }
    fn first_after(&self, t: Instant) -> Option<Instant> {
        self.0.lock().unwrap().iter().map(|(at, _)| *at).find(|at| *at > t)
    }
    fn arrivals(&self) -> Vec<Instant> {
        self.0.lock().unwrap().iter().map(|(at, _)| *at).collect()
    }
}

/// Polls `cond` every 20 ms for up to `limit`.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Runs `cam` with `run_camera` until `n` frames came, then stops it.
fn take_frames(cam: &CameraSource, n: usize) -> (Result<streetscope_ingest::CameraReport, String>, Vec<Frame>) {
    let frames = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let frames = frames.clone();
        move |f: Frame| {
            let mut v = frames.lock().unwrap();
            v.push(f);
            v.len() < n
        }
    };
    let r = run_camera(cam, sink, &StopHandle::default()).map_err(|e| e.to_string());
    let frames = std::mem::take(&mut *frames.lock().unwrap());
    (r, frames)
}

#[test]
fn h264_and_h265_streams_arrive_in_sequence_with_their_letterbox() {
    for codec in ["h264", "h265"] {
        let t = Instant::now();
        let server = Server::start(&["--codec", codec, "--size", "320x240", "--fps", "15"]);
        let (r, frames) = take_frames(&camera("cam-rtsp", &server.url), 8);
        let report = r.unwrap_or_else(|e| panic!("{codec}: {e}"));
        assert!(report.stopped, "{codec}: the sink asked to stop");
        assert_eq!(frames.iter().map(|f| f.seq).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>(), "{codec}");
        for f in &frames {
            assert_eq!(f.letterbox, Letterbox::fit(320, 240, 160, 160), "{codec}");
            assert_eq!(f.payload.len(), 160 * 160 * 3);
            assert_eq!(&*f.camera_id, "cam-rtsp");
        }
        // Sampled by timestamp at 5 fps from 15 fps: about 200 ms apart.
        for w in frames.windows(2) {
            let gap = w[1].pts_ns - w[0].pts_ns;
            assert!((150_000_000..=450_000_000).contains(&gap), "{codec}: gap {gap} ns");
        }
        eprintln!("{codec}: 8 frames in {:.2} s", t.elapsed().as_secs_f64());
    }
}

#[test]
fn credentials_in_the_url_work_and_a_wrong_password_is_a_clear_error() {
    let server = Server::start(&["--user", "alice", "--password", "s3cret-pw"]);
    let (r, frames) = take_frames(&camera("cam-auth", &server.url_with("alice", "s3cret-pw")), 3);
    r.unwrap();
    assert_eq!(frames.len(), 3);

    let t = Instant::now();
    let (r, frames) = take_frames(&camera("cam-auth", &server.url_with("alice", "wrong-pw")), 3);
    let msg = r.unwrap_err();
    assert!(frames.is_empty());
    assert!(msg.starts_with("camera cam-auth: source rtsp://alice:***@127.0.0.1:"), "{msg}");
    assert!(msg.to_lowercase().contains("unauthori") || msg.to_lowercase().contains("not authori"), "{msg}");
    assert!(!msg.contains("wrong-pw") && !msg.contains("s3cret-pw"), "{msg}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    eprintln!("wrong password, in {:.2} s: {msg}", t.elapsed().as_secs_f64());

    // Under the supervisor, the status says the same, credential-free.
    let cam = SupervisedCamera::spawn(
        camera("cam-auth", &server.url_with("alice", "wrong-pw")),
        quick(),
        Collected::default().sink(),
    )
    .unwrap();
    assert!(wait_for(Duration::from_secs(15), || matches!(
        cam.status().snapshot().state,
        CameraState::BackingOff { attempt: 2.., .. }
    )));
    let s = cam.status().snapshot();
    let err = s.last_error.clone().unwrap();
    assert!(!format!("{s:?}").contains("wrong-pw"), "{s:?}");
    assert!(err.contains("rtsp://alice:***@"), "{err}");
    assert!(cam.shutdown().unwrap().stopped);
}

#[test]
fn a_camera_reconnects_after_its_server_restarts_and_another_loses_nothing() {
    let t0 = Instant::now();
    let a = Server::start(&["--fps", "15"]);
    let b = Server::start(&["--fps", "15"]);
    let (frames_a, frames_b) = (Collected::default(), Collected::default());
    let cam_a = SupervisedCamera::spawn(camera("cam-a", &a.url), quick(), frames_a.sink()).unwrap();
    let cam_b = SupervisedCamera::spawn(camera("cam-b", &b.url), quick(), frames_b.sink()).unwrap();
    assert!(wait_for(Duration::from_secs(20), || frames_a.len() >= 10 && frames_b.len() >= 10), "streams start");

    let b_before = frames_b.len();
    let port = a.kill();
    // Down long enough for the watchdog to fire and a few retries to fail.
    assert!(wait_for(Duration::from_secs(10), || matches!(
        cam_a.status().snapshot().state,
        CameraState::BackingOff { .. }
    )));
    std::thread::sleep(Duration::from_secs(2));
    let a_down = cam_a.status().snapshot();
    let a = Server::start(&["--fps", "15", "--port", &port.to_string()]);
    let back = Instant::now();
    assert!(wait_for(Duration::from_secs(10), || frames_a.first_after(back).is_some()), "camera a never came back");
    let latency = frames_a.first_after(back).unwrap() - back;
    eprintln!("reconnect latency: {:.2} s after the server's return", latency.as_secs_f64());
    assert!(latency < Duration::from_secs(5), "{latency:?}");
    // A few more frames after the reconnect, then stop both.
    let n = frames_a.len();
    assert!(wait_for(Duration::from_secs(5), || frames_a.len() >= n + 3));
    let status_a = cam_a.status().snapshot();
    let stop_asked = Instant::now();
    let (ra, rb) = (cam_a.shutdown().unwrap(), cam_b.shutdown().unwrap());
    eprintln!("two streaming cameras stopped in {:.2} s", stop_asked.elapsed().as_secs_f64());
    drop(a);

    assert!(status_a.reconnects >= 1, "{status_a:?}");
    assert!(a_down.last_error.is_some(), "{a_down:?}");
    eprintln!("camera a while its server was down: {:?}", a_down.last_error.as_deref().unwrap());
    // Sequence numbers continue across the reconnect: 0..n, no reset, no gap.
    let seqs = frames_a.seqs();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(ra.frames, seqs.len() as u64);
    // Camera b went on: no reconnect, no gap in its sequence, frames all along.
    let status_b = cam_b_status(&frames_b, rb.frames);
    assert!(frames_b.len() > b_before + 5, "{status_b}");
    let arrivals = frames_b.arrivals();
    let worst = arrivals.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(worst < Duration::from_secs(2), "camera b stalled for {worst:?}");
    eprintln!(
        "camera b: {status_b}, longest gap {:.2} s; test {:.1} s",
        worst.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

/// The camera's status, noting in `attempts` each backoff it is in (as
/// reconnections so far and the attempt's number) the first time it is seen.
fn status_noting_backoff(sup: &SupervisedCamera, attempts: &mut Vec<(u64, u32)>) -> streetscope_ingest::CameraStatus {
    let s = sup.status().snapshot();
    if let CameraState::BackingOff { attempt, .. } = s.state {
        if attempts.last() != Some(&(s.reconnects, attempt)) {
            attempts.push((s.reconnects, attempt));
        }
    }
    s
}

fn cam_b_status(frames: &Collected, reported: u64) -> String {
    let seqs = frames.seqs();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>(), "camera b's sequence has a gap");
    assert_eq!(reported, seqs.len() as u64);
    format!("{} frames", seqs.len())
}

#[test]
fn a_server_that_accepts_and_sends_nothing_trips_the_watchdog_and_is_retried() {
    let t = Instant::now();
    let server = Server::start(&["--silent"]);
    let mut cam = camera("cam-silent", &server.url);
    cam.stall_timeout = Duration::from_millis(800);
    let policy = RestartPolicy {
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(300),
        ..quick()
    };
    let sup = SupervisedCamera::spawn(cam, policy, Collected::default().sink()).unwrap();
    let mut states = Vec::new();
    assert!(
        wait_for(Duration::from_secs(20), || {
            let s = sup.status().snapshot();
            if states.last() != Some(&s.state.name()) {
                states.push(s.state.name());
            }
            matches!(s.state, CameraState::BackingOff { attempt: 3.., .. })
        }),
        "states seen: {states:?}"
    );
    let s = sup.status().snapshot();
    assert!(s.last_error.as_deref().unwrap().contains("stall timeout"), "{s:?}");
    assert!(s.reconnects >= 2 && s.frames == 0, "{s:?}");
    assert!(states.contains(&"connecting") && states.contains(&"backing_off"), "{states:?}");
    let stop_asked = Instant::now();
    assert!(sup.shutdown().unwrap().stopped);
    let stopping = stop_asked.elapsed();
    assert!(stopping < Duration::from_secs(5), "stopping took {stopping:?}");
    eprintln!("watchdog: 3 attempts in {:.1} s; stopped in {:.2} s", t.elapsed().as_secs_f64(), stopping.as_secs_f64());
}

#[test]
fn a_closed_port_backs_off_and_a_wrong_scheme_fails_while_another_camera_streams() {
    let good = Server::start(&[]);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let frames = Collected::default();
    let ok = SupervisedCamera::spawn(camera("cam-ok", &good.url), quick(), frames.sink()).unwrap();
    let nobody = SupervisedCamera::spawn(
        camera("cam-nobody", &format!("rtsp://bob:hunter2@127.0.0.1:{closed}/test")),
        quick(),
        Collected::default().sink(),
    )
    .unwrap();
    let scheme =
        SupervisedCamera::spawn(camera("cam-scheme", "foo://bob:hunter2@cam/x"), quick(), Collected::default().sink())
            .unwrap();

    assert!(wait_for(Duration::from_secs(10), || scheme.is_finished()));
    let e = scheme.join().unwrap_err().to_string();
    assert!(e.starts_with("camera cam-scheme: source foo://bob:***@cam/x: unsupported URL scheme \"foo\""), "{e}");
    assert!(!e.contains("hunter2"));

    assert!(wait_for(Duration::from_secs(20), || matches!(
        nobody.status().snapshot().state,
        CameraState::BackingOff { attempt: 3.., .. }
    )));
    let s = nobody.status().snapshot();
    let err = s.last_error.clone().unwrap();
    assert!(err.starts_with(&format!("camera cam-nobody: source rtsp://bob:***@127.0.0.1:{closed}/test: ")), "{err}");
    assert!(!format!("{s:?}").contains("hunter2"), "{s:?}");
    assert!(err.contains("refused or closed the connection"), "{err}");

    assert!(wait_for(Duration::from_secs(10), || frames.len() >= 10), "the good camera streams");
    assert_eq!(ok.status().snapshot().state, CameraState::Streaming);
    assert!(nobody.shutdown().unwrap().stopped);
    let r = ok.shutdown().unwrap();
    assert_eq!(frames.seqs(), (0..r.frames).collect::<Vec<_>>());
    eprintln!("closed port: {err}");
}

#[test]
fn a_stream_that_stalls_mid_session_is_torn_down_and_resumes_its_sequence() {
    let t = Instant::now();
    // Every session sends about 2 s of media, then nothing, with the session open.
    let server = Server::start(&["--fps", "15", "--freeze-after", "2"]);
    let mut cam = camera("cam-freeze", &server.url);
    cam.stall_timeout = Duration::from_millis(1000);
    // Runs that streamed for 0.5 s were healthy: each stall starts the backoff over.
    let policy = RestartPolicy { healthy_after: Duration::from_millis(500), ..quick() };
    let frames = Collected::default();
    let sup = SupervisedCamera::spawn(cam, policy, frames.sink()).unwrap();
    let mut attempts = Vec::new();
    let came_back = wait_for(Duration::from_secs(30), || {
        let s = status_noting_backoff(&sup, &mut attempts);
        s.reconnects >= 2 && s.state == CameraState::Streaming
    });
    let s = sup.status().snapshot();
    assert!(came_back, "{s:?}; backoffs {attempts:?}");
    assert!(s.last_error.as_deref().unwrap().contains("stall timeout"), "{s:?}");
    // Each stall came after a healthy run: always the first attempt.
    assert!(attempts.iter().all(|&(_, a)| a == 1), "{attempts:?}");
    let r = sup.shutdown().unwrap();
    let seqs = frames.seqs();
    assert_eq!(seqs, (0..r.frames).collect::<Vec<_>>(), "no reset, no gap across reconnects");
    eprintln!("stalls: {} frames over {} reconnects in {:.1} s", seqs.len(), s.reconnects, t.elapsed().as_secs_f64());
}

#[test]
fn a_served_file_that_ends_is_reconnected_and_played_again() {
    let t = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("one-second.mp4");
    let fmt = streetscope_ingest::clipwriter::ClipFormat { width: 320, height: 180, fps: 25, keyframe_interval: 25 };
    streetscope_ingest::clipwriter::write_mp4(&clip, fmt, (0..25u8).map(|i| vec![i * 8; 320 * 180 * 3])).unwrap();
    let server = Server::start(&["--file", clip.to_str().unwrap()]);
    let frames = Collected::default();
    // Sessions of a second, far from healthy_after (30 s): each one that ended
    // normally after its frames starts the backoff over all the same.
    let policy = RestartPolicy { max_backoff: Duration::from_secs(8), ..quick() };
    assert_eq!(policy.healthy_after, Duration::from_secs(30));
    let sup = SupervisedCamera::spawn(camera("cam-clip", &server.url), policy, frames.sink()).unwrap();
    let mut attempts = Vec::new();
    let replayed = wait_for(Duration::from_secs(20), || {
        let s = status_noting_backoff(&sup, &mut attempts);
        s.reconnects >= 4 && frames.len() >= 16
    });
    let s = sup.status().snapshot();
    assert!(replayed, "{s:?}; backoffs {attempts:?}");
    assert!(!attempts.is_empty() && attempts.iter().all(|&(_, a)| a == 1), "{attempts:?}");
    assert!(s.last_error.as_deref().unwrap().ends_with("/test: the stream ended"), "{s:?}");
    let r = sup.shutdown().unwrap();
    let seqs = frames.seqs();
    assert_eq!(seqs, (0..r.frames).collect::<Vec<_>>());
    for (_, f) in frames.0.lock().unwrap().iter() {
        assert_eq!(f.letterbox, Letterbox::fit(320, 180, 160, 160));
    }
    eprintln!("served file: {:?} after {} plays; {:.1} s", s.last_error, s.reconnects, t.elapsed().as_secs_f64());
}

#[test]
fn cameras_are_added_and_removed_while_others_stream() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let server = Server::start(&["--codec", "h264", "--size", "320x240", "--fps", "15"]);
    let counter = |n: &Arc<AtomicU64>| {
        let n = n.clone();
        move |_f: Frame| {
            n.fetch_add(1, Ordering::Relaxed);
            true
        }
    };
    let (a_frames, b_frames) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let a = SupervisedCamera::spawn(camera("cam-a", &server.url), quick(), counter(&a_frames)).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // Add a camera while the first streams.
    let b = SupervisedCamera::spawn(camera("cam-b", &server.url), quick(), counter(&b_frames)).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let a_before = a_frames.load(Ordering::Relaxed);
    assert!(a_before > 0 && b_frames.load(Ordering::Relaxed) > 0);
    // Remove the first: it stops at once; the second goes on.
    let started = Instant::now();
    let report = a.shutdown().unwrap();
    assert!(report.stopped && started.elapsed() < Duration::from_secs(3));
    let (a_after, b_mid) = (a_frames.load(Ordering::Relaxed), b_frames.load(Ordering::Relaxed));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(a_frames.load(Ordering::Relaxed), a_after, "a removed camera delivers nothing more");
    assert!(b_frames.load(Ordering::Relaxed) > b_mid, "the other camera goes on");
    assert_eq!(b.status().snapshot().reconnects, 0);
    b.shutdown().unwrap();
}

/// A camera of a config file, as the reconciler gets it.
fn camera_config(id: &str, source: &str, sample_fps: f64, line_x: f64) -> streetscope_contracts::config::CameraConfig {
    let text = format!(
        "[[cameras]]\nid = {id:?}\nintersection = \"x-1\"\nsource = {source:?}\nsample_fps = {sample_fps:?}\n\
         [[cameras.lines]]\nname = \"gate\"\nstart = [{line_x:?}, 1.0]\nend = [{line_x:?}, 0.0]\n"
    );
    let cfg = streetscope_contracts::PipelineConfig::from_toml_str(&text, "test", None).unwrap();
    cfg.cameras.into_iter().next().unwrap()
}

#[test]
fn the_reconciler_starts_updates_and_removes_cameras_one_at_a_time() {
    use streetscope_contracts::cameras::CameraChange::{Remove, Upsert};
    use streetscope_contracts::identity;
    use streetscope_ingest::reconcile::{Applied, IngestSettings, Reconciler};

    let t = Instant::now();
    let server = Server::start(&["--fps", "15"]);
    let frames: Arc<Mutex<PerCamera>> = Arc::default();
    let settings = IngestSettings {
        width: 160,
        height: 160,
        stall_timeout: Duration::from_secs(3),
        policy: quick(),
        default_jpeg_quality: None,
    };
    let starts = Arc::new(Mutex::new(Vec::new()));
    let mut rec = {
        let (frames, starts) = (frames.clone(), starts.clone());
        Reconciler::new(settings, move |cam: &CameraSource| {
            starts.lock().unwrap().push(cam.camera_id.clone());
            let frames = frames.clone();
            move |f: Frame| {
                frames.lock().unwrap().entry(f.camera_id.to_string()).or_default().push((Instant::now(), f));
                true
            }
        })
    };
    let count = |id: &str| frames.lock().unwrap().get(id).map_or(0, Vec::len);
    let statuses = rec.statuses();
    let status =
        |id: &str| rec_statuses(&statuses).into_iter().find(|s| s.camera_id == id).map(|s| (s.state, s.reconnects));

    assert_eq!(rec.apply(Upsert(camera_config("a", &server.url, 5.0, 0.5))).unwrap(), Applied::Started);
    assert_eq!(rec.apply(Upsert(camera_config("b", &server.url, 5.0, 0.5))).unwrap(), Applied::Started);
    assert!(wait_for(Duration::from_secs(20), || count("a") >= 5 && count("b") >= 5), "both stream");

    // New counting lines are not ingest's business: b goes on untouched.
    assert_eq!(rec.apply(Upsert(camera_config("b", &server.url, 5.0, 0.9))).unwrap(), Applied::Unchanged);
    // A new sampling rate restarts b, and only b.
    let b_before = count("b");
    assert_eq!(rec.apply(Upsert(camera_config("b", &server.url, 10.0, 0.9))).unwrap(), Applied::Restarted);
    assert!(wait_for(Duration::from_secs(20), || count("b") >= b_before + 10), "b streams again");
    assert_eq!(status("a"), Some((CameraState::Streaming, 0)), "a was not touched");

    // Removing a stops it at once; b goes on.
    let removing = Instant::now();
    assert_eq!(rec.apply(Remove { id: "a".into() }).unwrap(), Applied::Removed);
    assert!(removing.elapsed() < Duration::from_secs(3), "{:?}", removing.elapsed());
    assert_eq!(rec.apply(Remove { id: "a".into() }).unwrap(), Applied::Unknown);
    assert_eq!(rec.camera_ids(), ["b"]);
    let (a_after, b_mid) = (count("a"), count("b"));
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(count("a"), a_after, "a removed camera delivers nothing more");
    assert!(count("b") > b_mid);

    // a comes back: a new run, numbered above everything a used before.
    assert_eq!(rec.apply(Upsert(camera_config("a", &server.url, 5.0, 0.5))).unwrap(), Applied::Started);
    assert!(wait_for(Duration::from_secs(20), || count("a") >= a_after + 3));
    let results = rec.shutdown();
    assert_eq!(results.len(), 4, "b and a stopped by changes, then a and b at the end");
    assert!(results.iter().all(|(_, r)| r.as_ref().is_ok_and(|r| r.stopped)), "{results:?}");
    assert_eq!(*starts.lock().unwrap(), ["a", "b", "b", "a"]);

    let frames = frames.lock().unwrap();
    for (id, fs) in frames.iter() {
        let seqs: Vec<u64> = fs.iter().map(|(_, f)| f.seq).collect();
        assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{id}: sequence numbers go back: {seqs:?}");
        // Each start is a run of its own, numbered from index 0, runs by the clock.
        let runs: Vec<u64> = seqs.iter().map(|&s| identity::run_of(s)).collect();
        let mut starts_of: Vec<u64> = runs.clone();
        starts_of.dedup();
        assert_eq!(starts_of.len(), 2, "{id}: two starts, two runs: {starts_of:?}");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert!(starts_of.iter().all(|&r| r + 120 > now && r <= now + 2), "{id}: runs are Unix seconds: {starts_of:?}");
        for w in fs.windows(2) {
            let (a, b) = (w[0].1.seq, w[1].1.seq);
            if identity::run_of(a) == identity::run_of(b) {
                assert_eq!(b, a + 1, "{id}: contiguous inside a run");
            } else {
                assert_eq!(identity::index_of(b), 0, "{id}: a run starts at index 0");
            }
        }
        assert_eq!(identity::index_of(seqs[0]), 0, "{id}");
    }
    // b at 10 fps after its restart: frames 100 ms apart in the stream.
    let b = &frames["b"];
    let last = &b[b.len() - 3..];
    let gap = last[2].1.pts_ns - last[1].1.pts_ns;
    assert!((50_000_000..=150_000_000).contains(&gap), "{gap}");
    eprintln!(
        "reconciler: {:?} frames in {:.1} s",
        frames.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>(),
        t.elapsed().as_secs_f64()
    );
}

/// Frames with their arrival time, per camera id.
type PerCamera = std::collections::HashMap<String, Vec<(Instant, Frame)>>;

fn rec_statuses(s: &streetscope_ingest::reconcile::CameraStatuses) -> Vec<streetscope_ingest::CameraStatus> {
    s.handles().iter().map(|h| h.snapshot()).collect()
}

#[test]
fn the_rtsp_transport_is_chosen_per_camera() {
    use streetscope_contracts::config::RtspTransport;
    let t = Instant::now();
    let any = Server::start(&["--fps", "15"]);
    let tcp_only = Server::start(&["--fps", "15", "--tcp-only"]);
    let with = |url: &str, transport| CameraSource { rtsp_transport: transport, ..camera("cam-transport", url) };

    // UDP against a server that takes UDP: frames, in sequence, with their geometry.
    let (r, frames) = take_frames(&with(&any.url, RtspTransport::Udp), 5);
    r.unwrap();
    assert_eq!(frames.iter().map(|f| f.seq).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    assert!(frames.iter().all(|f| f.letterbox == Letterbox::fit(320, 240, 160, 160)));
    // TCP against a server that takes only TCP.
    let (r, frames) = take_frames(&with(&tcp_only.url, RtspTransport::Tcp), 3);
    r.unwrap();
    assert_eq!(frames.len(), 3);
    // UDP against a server that refuses it: a clear error, soon — proof that UDP
    // was all the camera asked for.
    let asked = Instant::now();
    let (r, frames) = take_frames(&with(&tcp_only.url, RtspTransport::Udp), 3);
    let e = r.unwrap_err();
    assert!(frames.is_empty());
    assert!(e.starts_with("camera cam-transport: source rtsp://127.0.0.1:"), "{e}");
    assert!(asked.elapsed() < Duration::from_secs(10), "{:?}", asked.elapsed());
    // Auto falls back to TCP.
    let (r, frames) = take_frames(&with(&tcp_only.url, RtspTransport::Auto), 3);
    r.unwrap();
    assert_eq!(frames.len(), 3);
    eprintln!("transports in {:.1} s; UDP refused: {e}", t.elapsed().as_secs_f64());
}

#[test]
fn a_camera_that_comes_back_with_another_resolution_and_codec_gets_the_new_geometry() {
    let t = Instant::now();
    let first = Server::start(&["--codec", "h264", "--size", "1280x720", "--fps", "10"]);
    let frames = Collected::default();
    let sup = SupervisedCamera::spawn(camera("cam-change", &first.url), quick(), frames.sink()).unwrap();
    assert!(wait_for(Duration::from_secs(30), || frames.len() >= 4), "720p H.264 streams");
    let port = first.kill();
    let _second = Server::start(&["--codec", "h265", "--size", "640x360", "--fps", "10", "--port", &port.to_string()]);
    let back = Instant::now();
    assert!(wait_for(Duration::from_secs(30), || frames.first_after(back).is_some()), "the camera never came back");
    let n = frames.len();
    assert!(wait_for(Duration::from_secs(15), || frames.len() >= n + 4), "360p H.265 streams");
    let s = sup.status().snapshot();
    let r = sup.shutdown().unwrap();
    assert!(s.reconnects >= 1, "{s:?}");
    let all = frames.0.lock().unwrap();
    assert_eq!(all.iter().map(|(_, f)| f.seq).collect::<Vec<_>>(), (0..r.frames).collect::<Vec<_>>());
    let (big, small) = (Letterbox::fit(1280, 720, 160, 160), Letterbox::fit(640, 360, 160, 160));
    // Both sizes letterbox to the same picture size in 160x160: the source size tells them apart.
    let sizes: Vec<(u32, u32)> = all.iter().map(|(_, f)| (f.letterbox.src_w, f.letterbox.src_h)).collect();
    let switch = sizes.iter().position(|&s| s == (640, 360)).expect("frames of the new size");
    assert!(sizes[..switch].iter().all(|&s| s == (1280, 720)), "{sizes:?}");
    assert!(sizes[switch..].iter().all(|&s| s == (640, 360)), "{sizes:?}");
    assert!(all[..switch].iter().all(|(_, f)| f.letterbox == big));
    assert!(all[switch..].iter().all(|(_, f)| f.letterbox == small && f.payload.len() == 160 * 160 * 3));
    assert!(all[switch].0 >= back);
    eprintln!(
        "resolution and codec change: {} + {} frames, {:.1} s",
        switch,
        all.len() - switch,
        t.elapsed().as_secs_f64()
    );
}

#[test]
fn a_resolution_change_inside_one_session_gets_the_new_geometry_without_reconnecting() {
    // The camera's encoder switches from 1280x720 to 640x480 three seconds into
    // the session; the RTP stream goes on with new parameter sets in-band.
    let server = Server::start(&["--size", "1280x720", "--fps", "10", "--resize-after", "3", "--resize-to", "640x480"]);
    let frames = Collected::default();
    let sup = SupervisedCamera::spawn(camera("cam-resize", &server.url), quick(), frames.sink()).unwrap();
    let changed = || frames.0.lock().unwrap().iter().filter(|(_, f)| f.letterbox.src_w == 640).count();
    assert!(wait_for(Duration::from_secs(40), || changed() >= 4), "no frame of the new size arrived");
    let s = sup.status().snapshot();
    let r = sup.shutdown().unwrap();
    assert_eq!(s.reconnects, 0, "the size changed inside the session, without a reconnection: {s:?}");
    let all = frames.0.lock().unwrap();
    assert_eq!(all.iter().map(|(_, f)| f.seq).collect::<Vec<_>>(), (0..r.frames).collect::<Vec<_>>());
    let sizes: Vec<(u32, u32)> = all.iter().map(|(_, f)| (f.letterbox.src_w, f.letterbox.src_h)).collect();
    let switch = sizes.iter().position(|&s| s == (640, 480)).expect("frames of the new size");
    assert!(switch > 0 && sizes[..switch].iter().all(|&s| s == (1280, 720)), "{sizes:?}");
    assert!(sizes[switch..].iter().all(|&s| s == (640, 480)), "{sizes:?}");
    // 16:9 and 4:3 letterbox differently into the square model input.
    let (wide, four_three) = (Letterbox::fit(1280, 720, 160, 160), Letterbox::fit(640, 480, 160, 160));
    assert_ne!(wide, four_three);
    assert!(all[..switch].iter().all(|(_, f)| f.letterbox == wide));
    assert!(all[switch..].iter().all(|(_, f)| f.letterbox == four_three && f.payload.len() == 160 * 160 * 3));
    eprintln!("resolution change in one session: {} + {} frames", switch, all.len() - switch);
}

#[test]
fn frames_are_stamped_with_the_cameras_ntp_time_once_a_sender_report_came() {
    use streetscope_contracts::CaptureClock;
    let server = Server::start(&["--fps", "15"]);
    let frames = Collected::default();
    let sup = SupervisedCamera::spawn(camera("cam-ntp", &server.url), quick(), frames.sink()).unwrap();
    let ntp = |c: &Collected| c.0.lock().unwrap().iter().filter(|(_, f)| f.clock == CaptureClock::CameraNtp).count();
    // gst-rtsp-server sends its first RTCP sender report within a few seconds.
    let got = wait_for(Duration::from_secs(20), || ntp(&frames) >= 5);
    sup.shutdown().unwrap();
    let all = frames.0.lock().unwrap();
    let clocks: Vec<CaptureClock> = all.iter().map(|(_, f)| f.clock).collect();
    assert!(got, "no frame stamped by the camera's clock: {clocks:?}");
    // Arrival time until the first report, the camera's time from then on.
    let first = clocks.iter().position(|c| *c == CaptureClock::CameraNtp).unwrap();
    assert!(clocks[..first].iter().all(|c| *c == CaptureClock::Arrival), "{clocks:?}");
    assert!(clocks[first..].iter().all(|c| *c == CaptureClock::CameraNtp), "{clocks:?}");
    // The server shares this machine's clock: its capture times are close to our
    // arrival times, a little before them, and advance with the stream.
    let now_ms = |at: Instant| {
        let ago = Instant::now() - at;
        (std::time::SystemTime::now() - ago).duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
    };
    for (at, f) in &all[first..] {
        let lag = now_ms(*at) - f.capture_time_ms;
        assert!((-50..2000).contains(&lag), "capture {} vs arrival: lag {lag} ms", f.capture_time_ms);
    }
    for w in all[first..].windows(2) {
        let (dt_capture, dt_pts) =
            (w[1].1.capture_time_ms - w[0].1.capture_time_ms, (w[1].1.pts_ns - w[0].1.pts_ns) / 1_000_000);
        assert!(
            (dt_capture - dt_pts as i64).abs() <= 40,
            "capture times advance with the stream: {dt_capture} vs {dt_pts} ms"
        );
    }
    eprintln!("NTP: {} frames by arrival, then {} by the camera's clock", first, all.len() - first);
}
