//! `streetscope report`: the deliverables of a traffic study (turning-movement
//! counts, peak hours with PHF, UTDF, queues, validation against a manual count)
//! from the results of `streetscope run` (JSON Lines) or of a distributed
//! deployment (the result topics, read for the study's period by
//! offsets-for-times). The logic is `streetscope-report`; this reads what it
//! is given and writes the outputs (docs/report.md).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use streetscope_contracts::kafka::KafkaConfig;
use streetscope_contracts::PipelineConfig;
use streetscope_report::{read_results, read_topic_messages, Results, Scope, StudyConfig, TopicMessage};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results of `streetscope run` (JSON Lines).
    #[arg(long, required_unless_present = "brokers", conflicts_with = "brokers")]
    results: Option<PathBuf>,
    /// Read the results from Kafka instead: the `events` and `counts` topics of
    /// a distributed deployment, only the part for `--from`..`--to` (both then
    /// required), found by the messages' event-time stamps.
    // No `env`: a STREETSCOPE_BROKERS set for the stages would clash with --results.
    #[arg(long, requires_all = ["from", "to"])]
    brokers: Option<String>,
    /// With `--brokers`: the cluster configuration (TOML: `[kafka]` with TLS,
    /// SASL and topic names); without it, plain TCP and the default topic names.
    #[arg(long, requires = "brokers")]
    cluster: Option<PathBuf>,
    /// With `--brokers`: how far past `--to`, in event time, to read each
    /// partition, seconds. Records come out of order by up to a window's
    /// lateness or a track's life in view (a class vote held); a record whose
    /// event time is before `--to` but that was published after one stamped
    /// `--to` plus this is not read.
    #[arg(long, default_value_t = 3600, requires = "brokers")]
    tail_s: u32,
    /// The pipeline configuration the results were made with: its
    /// `[[analytics.approaches]]` give each approach's compass `leg`.
    #[arg(long)]
    config: PathBuf,
    /// The study's settings (TOML: time zone, sites, class groups, peak periods,
    /// thresholds, lane storage; docs/report.md).
    #[arg(long)]
    study: Option<PathBuf>,
    /// The site's time zone (IANA name, e.g. America/New_York); overrides the study's.
    #[arg(long)]
    time_zone: Option<String>,
    /// Only this intersection.
    #[arg(long)]
    intersection: Option<String>,
    /// Start of the period: ISO 8601 with offset, or local time in the site's zone
    /// (2026-01-01T07:00). Default: the start of the results' windows.
    #[arg(long)]
    from: Option<String>,
    /// End of the period (exclusive), as `--from`. Default: the end of the results' windows.
    #[arg(long)]
    to: Option<String>,
    /// A manual count (CSV) to validate against: bin_start, direction, movement, count
    /// (and optionally intersection_id, approach_leg, class_group).
    #[arg(long)]
    manual: Option<PathBuf>,
    /// Folder for the outputs (created if needed; files in it are replaced whole).
    #[arg(long, default_value = "report")]
    out: PathBuf,
}

fn read(p: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
}

pub fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let origin = |p: &PathBuf| p.display().to_string();
    let study_text = args.study.as_ref().map(read).transpose()?;
    let study_origin = args.study.as_ref().map_or("--time-zone".to_owned(), origin);
    let study = StudyConfig::from_toml_with_zone(study_text.as_deref(), &study_origin, args.time_zone.as_deref())?;
    let tz = streetscope_report::time::zone(&study.time_zone)?;
    let at = |flag: &str, s: &Option<String>| -> anyhow::Result<Option<i64>> {
        s.as_deref()
            .map(|s| streetscope_report::time::parse(s, &tz).map_err(|e| anyhow::anyhow!("{flag}: {e}")))
            .transpose()
    };
    let scope = Scope {
        intersection: args.intersection.clone(),
        from_ms: at("--from", &args.from)?,
        to_ms: at("--to", &args.to)?,
    };
    let config = PipelineConfig::from_toml_str(&read(&args.config)?, &origin(&args.config), args.config.parent())?;
    let results = match (&args.results, &args.brokers) {
        (Some(path), _) => read_results(&origin(path), &read(path)?)?,
        (None, Some(brokers)) => read_kafka(&args, brokers, &scope)?,
        (None, None) => anyhow::bail!("give --results FILE or --brokers HOST:PORT"),
    };
    let manual = args.manual.as_ref().map(|p| read(p).map(|t| (origin(p), t))).transpose()?;
    let names = streetscope_report::report_to_dir(
        &results,
        &config.analytics.approaches,
        &study,
        &scope,
        manual.as_ref().map(|(o, t)| (o.as_str(), t.as_str())),
        &args.out,
    )?;
    for n in &names {
        println!("{}", args.out.join(n).display());
    }
    if let Ok(notes) = std::fs::read_to_string(args.out.join("notes.txt")) {
        eprint!("{notes}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Window records are stamped with their start: a window holding `--from` may
/// start up to its length (at most a bin, 15 minutes) before it.
const WINDOW_LEAD_MS: i64 = 900_000;

/// The study's records from the `events` and `counts` topics: per partition,
/// from the first message stamped `--from` (less a window) to the first
/// stamped `--to` plus `--tail-s`.
fn read_kafka(args: &ReportArgs, brokers: &str, scope: &Scope) -> anyhow::Result<Results> {
    let kafka: KafkaConfig = match &args.cluster {
        Some(path) => {
            let cluster = crate::cluster::ClusterArgs {
                cluster: path.clone(),
                brokers: Some(brokers.to_owned()),
                status_addr: None,
                stop_timeout: crate::cluster::DEFAULT_STOP_TIMEOUT_S,
                group_instance_id: None,
            };
            cluster.load()?.kafka
        }
        None => {
            serde_json::from_value(serde_json::json!({ "brokers": brokers })).context("--brokers: not a broker list")?
        }
    };
    let (Some(from), Some(to)) = (scope.from_ms, scope.to_ms) else {
        anyhow::bail!("--brokers needs --from and --to: the study's period");
    };
    let until = to + i64::from(args.tail_s) * 1000;
    let mut logs = Vec::new();
    for topic in [&kafka.topics.events.name, &kafka.topics.counts.name] {
        let rows = streetscope_transport::kafka::read_log_between(&kafka, topic, from - WINDOW_LEAD_MS, until)
            .with_context(|| format!("reading {topic} from {brokers}"))?;
        eprintln!("{topic}: {} messages read for the period", rows.len());
        logs.push((topic.clone(), rows));
    }
    let messages = logs.iter().flat_map(|(topic, rows)| {
        rows.iter().map(move |r| TopicMessage {
            topic,
            partition: r.partition,
            offset: r.offset,
            key: &r.key,
            value: r.value.as_deref(),
        })
    });
    Ok(read_topic_messages(messages, args.intersection.as_deref())?)
}

#[cfg(test)]
mod tests {
    //! `streetscope report --brokers` against the real test broker (tansu on
    //! 127.0.0.1): the records of a simulated study published as the
    //! distributed aggregator publishes them (same topics, key and event-time
    //! stamps), read back for a period, give the same files as the JSON Lines.

    use std::collections::BTreeMap;

    use super::*;
    use streetscope_aggregate::Aggregator;
    use streetscope_contracts::config::{AnalyticsConfig, TrackerConfig};
    use streetscope_contracts::records::ResultRecord;
    use streetscope_simulator::{scenario, IntersectionSpec, NoiseSpec, Simulation};
    use streetscope_testbroker::TestBroker;
    use streetscope_transport::kafka::{ensure_topics, Producer, Role};

    /// 2026-01-01T06:00:00-05:00.
    const SIX_AM_NEW_YORK: i64 = 1_767_265_200_000;

    /// `minutes` of the default junction from 06:00 New York with typical
    /// noise: the aggregator's records (as `run` writes them) and its approaches.
    fn study(intersection: &str, minutes: f64, seed: u64) -> (Vec<ResultRecord>, AnalyticsConfig) {
        let spec = IntersectionSpec {
            duration_s: minutes * 60.0,
            epoch_ms: SIX_AM_NEW_YORK,
            intersection_id: intersection.to_owned(),
            camera_id: format!("{intersection}-cam"),
            ..scenario::default_four_way()
        };
        let sim = Simulation::new(spec, NoiseSpec::typical(), seed).unwrap();
        let cam = sim.camera(sim.spec().queue_zones());
        let analytics = sim.study_analytics(&cam.id);
        let (frames, _) = sim.run_to_end();
        let mut agg = Aggregator::with_analytics(std::slice::from_ref(&cam), &TrackerConfig::default(), &analytics);
        let mut out = Vec::new();
        for f in &frames {
            let c = agg.process(f).unwrap();
            out.extend(agg.drain(c));
        }
        let c = agg.finish();
        out.extend(agg.drain(c));
        (out, analytics)
    }

    fn args(results: Option<PathBuf>, brokers: Option<String>, out: PathBuf) -> ReportArgs {
        ReportArgs {
            results,
            brokers,
            cluster: None,
            tail_s: 900,
            config: PathBuf::new(),
            study: None,
            time_zone: Some("America/New_York".into()),
            intersection: Some("main-and-5th".into()),
            from: Some("2026-01-01T06:30:00-05:00".into()),
            to: Some("2026-01-01T07:30".into()),
            manual: None,
            out,
        }
    }

    #[test]
    fn a_study_read_from_kafka_for_its_period_equals_the_json_lines_report() {
        let (ours, analytics) = study("main-and-5th", 120.0, 31);
        let (theirs, _) = study("elm-and-2nd", 120.0, 32);
        let dir = tempfile::tempdir().unwrap();
        let broker = TestBroker::start(&dir.path().join("broker"));
        let kafka: KafkaConfig = serde_json::from_value(serde_json::json!({ "brokers": broker.brokers() })).unwrap();
        // Published as the distributed aggregator publishes: topic by kind, key
        // the intersection, stamped with the event time; a replay of the first
        // records of the period (an aggregator restarted before committing).
        let replayed = ours.iter().filter(|r| r.event_time_ms().is_some_and(|t| t >= SIX_AM_NEW_YORK + 1_800_000));
        let published: Vec<(&str, &ResultRecord)> = ours
            .iter()
            .map(|r| ("main-and-5th", r))
            .chain(theirs.iter().map(|r| ("elm-and-2nd", r)))
            .chain(replayed.take(200).map(|r| ("main-and-5th", r)))
            .collect();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            ensure_topics(&kafka).await.unwrap();
            let producer = Producer::new(&kafka, Role::RecordProducer).unwrap();
            let mut pending = Vec::new();
            for (key, r) in &published {
                let json = serde_json::to_vec(r).unwrap();
                let topic = &r.topic(&kafka.topics).name;
                pending.push(producer.send_at(topic, key, Some(&json), &[], r.event_time_ms()).await.unwrap());
            }
            for p in pending {
                p.durable().await.unwrap();
            }
        });

        let config = StudyConfig::from_toml_with_zone(None, "--time-zone", Some("America/New_York")).unwrap();
        let tz = streetscope_report::time::zone(&config.time_zone).unwrap();
        let from = streetscope_report::time::parse("2026-01-01T06:30:00-05:00", &tz).unwrap();
        let to = streetscope_report::time::parse("2026-01-01T07:30", &tz).unwrap();
        let scope = Scope { intersection: Some("main-and-5th".into()), from_ms: Some(from), to_ms: Some(to) };

        // The JSON Lines path: the run's whole results file.
        let jsonl: String = ours.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
        let from_file = read_results("results.jsonl", &jsonl).unwrap();
        let a = args(None, Some(broker.brokers()), dir.path().join("kafka"));
        let from_kafka = read_kafka(&a, &broker.brokers(), &scope).unwrap();
        let read = from_kafka.records.iter().map(|(_, n)| n).sum::<u64>();
        let whole = from_file.records.iter().map(|(_, n)| n).sum::<u64>();
        assert!(read < whole * 3 / 4, "read {read} of the intersection's {whole} records: the period only");

        let render = |results: &Results, out: &std::path::Path| {
            let names =
                streetscope_report::report_to_dir(results, &analytics.approaches, &config, &scope, None, out).unwrap();
            names
                .into_iter()
                .map(|n| {
                    let bytes = std::fs::read(out.join(&n)).unwrap();
                    (n, bytes)
                })
                .collect::<BTreeMap<_, _>>()
        };
        let want = render(&from_file, &dir.path().join("jsonl"));
        let got = render(&from_kafka, &dir.path().join("kafka"));
        assert_eq!(want.keys().collect::<Vec<_>>(), got.keys().collect::<Vec<_>>());
        for (name, bytes) in &want {
            assert!(
                got[name] == *bytes,
                "{name} differs:\n--- JSON Lines\n{}\n--- Kafka\n{}",
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(&got[name])
            );
        }
        let tmc = String::from_utf8_lossy(&want["tmc.csv"]);
        assert_eq!(tmc.lines().filter(|l| l.contains("T06:30:00-05:00")).count(), 16 * 3, "{tmc}");
        assert!(!tmc.contains("T06:15:00") && !tmc.contains("T07:30:00"), "the period only");
    }
}
