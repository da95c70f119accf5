//! An RTSP test server (gst-rtsp-server) for the ingest tests and for trying
//! Streetscope without a camera.
//!
//! ```text
//! rtsp_server [--port N] [--codec h264|h265] [--file CLIP.mp4] [--size WxH] [--fps N]
//!             [--user U --password P] [--silent] [--freeze-after SECS] [--tcp-only]
//!             [--resize-after SECS --resize-to WxH]
//! ```
//!
//! Serves `rtsp://127.0.0.1:PORT/test`: a moving `videotestsrc` pattern encoded
//! live in H.264 (x264) or H.265 (x265), or an H.264 MP4 file (played from its
//! start for each client, then the stream ends). Port 0 picks a free port. With
//! `--user`/`--password` clients must authenticate (basic auth). `--silent`
//! listens on the port, accepts connections and never answers: a camera that
//! hangs. `--freeze-after` stops sending media that many seconds into each
//! session while keeping the session open: a camera that stalls mid-stream.
//! `--tcp-only` refuses RTP over UDP (media only inside the RTSP connection).
//! `--resize-after` changes the generated picture's size that many seconds into
//! each session, in the same RTP stream (the encoder sends new parameter sets):
//! a camera reconfigured while a client watches.
//! Once listening, prints one line, `rtsp://127.0.0.1:PORT/test`, on stdout.

use std::io::Write;

use gstreamer as gst;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

#[derive(Debug)]
struct Args {
    port: u16,
    codec: String,
    file: Option<String>,
    size: (u32, u32),
    fps: u32,
    user: Option<(String, String)>,
    silent: bool,
    freeze_after: Option<u32>,
    tcp_only: bool,
    resize_after: Option<u32>,
    resize_to: Option<(u32, u32)>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        port: 0,
        codec: "h264".into(),
        file: None,
        size: (320, 240),
        fps: 25,
        user: None,
        silent: false,
        resize_after: None,
        resize_to: None,
        freeze_after: None,
        tcp_only: false,
    };
    let (mut user, mut password) = (None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => a.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--codec" => a.codec = value()?,
            "--file" => a.file = Some(value()?),
            "--size" => {
                let v = value()?;
                let (w, h) = v.split_once('x').ok_or("--size: use WxH")?;
                a.size =
                    (w.parse().map_err(|e| format!("--size: {e}"))?, h.parse().map_err(|e| format!("--size: {e}"))?);
            }
            "--fps" => a.fps = value()?.parse().map_err(|e| format!("--fps: {e}"))?,
            "--user" => user = Some(value()?),
            "--password" => password = Some(value()?),
            "--silent" => a.silent = true,
            "--tcp-only" => a.tcp_only = true,
            "--resize-after" => a.resize_after = Some(value()?.parse().map_err(|e| format!("--resize-after: {e}"))?),
            "--resize-to" => {
                let v = value()?;
                let (w, h) = v.split_once('x').ok_or("--resize-to: use WxH")?;
                a.resize_to = Some((
                    w.parse().map_err(|e| format!("--resize-to: {e}"))?,
                    h.parse().map_err(|e| format!("--resize-to: {e}"))?,
                ));
            }
            "--freeze-after" => a.freeze_after = Some(value()?.parse().map_err(|e| format!("--freeze-after: {e}"))?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !matches!(a.codec.as_str(), "h264" | "h265") {
        return Err(format!("--codec {}: use h264 or h265", a.codec));
    }
    a.user = match (user, password) {
        (Some(u), Some(p)) => Some((u, p)),
        (None, None) => None,
        _ => return Err("--user and --password go together".into()),
    };
    Ok(a)
}

/// The media pipeline, in gst-rtsp-server's launch syntax.
fn launch(a: &Args) -> String {
    if let Some(file) = &a.file {
        return format!(
            "( filesrc location=\"{file}\" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        );
    }
    let (w, h) = a.size;
    let src = format!(
        "videotestsrc is-live=true pattern=ball ! capsfilter name=size caps=video/x-raw,width={w},height={h},framerate={}/1 ! videoconvert",
        a.fps
    );
    let gop = a.fps;
    match a.codec.as_str() {
        "h265" => format!(
            "( {src} ! x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} \
             ! video/x-h265,profile=main ! valve name=freeze ! rtph265pay name=pay0 pt=96 config-interval=-1 )"
        ),
        _ => format!(
            "( {src} ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} threads=1 \
             ! video/x-h264,profile=baseline ! valve name=freeze ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        ),
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rtsp_server: {e}");
            std::process::exit(2);
        }
    };
    if args.silent {
        silent(args.port);
    }
    gst::init().expect("GStreamer initialises");
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(&args.port.to_string());
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(&launch(&args));
    // Each client gets its own pipeline, so a reconnecting client starts afresh.
    factory.set_shared(false);
    if args.tcp_only {
        factory.set_protocols(gstreamer_rtsp_server::gst_rtsp::RTSPLowerTrans::TCP);
    }
    if let Some((user, password)) = &args.user {
        let auth = rtsp::RTSPAuth::new();
        let token = rtsp::RTSPToken::builder().field(rtsp::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer").build();
        auth.add_basic(rtsp::RTSPAuth::make_basic(user, password).as_str(), &token);
        server.set_auth(Some(&auth));
        factory.add_role_from_structure(
            &gst::Structure::builder("viewer")
                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                .field(rtsp::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                .build(),
        );
    }
    if let (Some(secs), Some((w, h))) = (args.resize_after, args.resize_to) {
        let fps = args.fps as i32;
        factory.connect_media_configure(move |_, media| {
            let Some(size) = media.element().downcast::<gst::Bin>().ok().and_then(|b| b.by_name("size")) else {
                return;
            };
            gst::glib::timeout_add_seconds_once(secs, move || {
                let caps = gst::Caps::builder("video/x-raw")
                    .field("width", w as i32)
                    .field("height", h as i32)
                    .field("framerate", gst::Fraction::new(fps, 1))
                    .build();
                size.set_property("caps", caps);
            });
        });
    }
    if let Some(secs) = args.freeze_after {
        factory.connect_media_configure(move |_, media| {
            let Some(valve) = media.element().downcast::<gst::Bin>().ok().and_then(|b| b.by_name("freeze")) else {
                return;
            };
            gst::glib::timeout_add_seconds_once(secs, move || valve.set_property("drop", true));
        });
    }
    server.mount_points().expect("a server has mount points").add_factory("/test", factory);
    let main_loop = gst::glib::MainLoop::new(None, false);
    if let Err(e) = server.attach(None) {
        eprintln!("rtsp_server: cannot listen on 127.0.0.1:{}: {e}", args.port);
        std::process::exit(1);
    }
    println!("rtsp://127.0.0.1:{}/test", server.bound_port());
    std::io::stdout().flush().expect("stdout");
    main_loop.run();
}

/// Accepts connections and never answers: a camera that hangs after the
/// TCP handshake. Connections are kept open until the process ends.
fn silent(port: u16) -> ! {
    let listener = match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rtsp_server: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    let port = listener.local_addr().expect("bound").port();
    println!("rtsp://127.0.0.1:{port}/test");
    std::io::stdout().flush().expect("stdout");
    let mut held = Vec::new();
    for conn in listener.incoming().flatten() {
        held.push(conn);
    }
    std::process::exit(0)
}
