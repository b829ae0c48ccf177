//! The paredão: one elimination vote, its participants and its voting window.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use utoipa::ToSchema;

use crate::slug::slug_id;

slug_id!(ParedaoId, "paredão");
slug_id!(ParticipantId, "participant");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Participant {
    pub id: ParticipantId,
    pub name: String,
    /// Where the page finds the participant's photo; without one the page draws an avatar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo_url: Option<String>,
}

/// Where a paredão is in its life, derived from its window and the clock, so every replica
/// agrees on it without coordination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParedaoState {
    Scheduled,
    Open,
    Closed,
}

impl ParedaoState {
    pub fn as_str(self) -> &'static str {
        match self {
            ParedaoState::Scheduled => "scheduled",
            ParedaoState::Open => "open",
            ParedaoState::Closed => "closed",
        }
    }
}

/// What the viewers' results show of a paredão's counts: the live percentages (the default,
/// also for paredões stored or configured before the setting existed), nothing until it has
/// closed, or nothing ever (the real show publishes no official partials).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResultsVisibility {
    #[default]
    Live,
    AfterClose,
    Never,
}

impl ResultsVisibility {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultsVisibility::Live => "live",
            ResultsVisibility::AfterClose => "after_close",
            ResultsVisibility::Never => "never",
        }
    }

    /// Whether viewers may see the counts of a paredão in `state`.
    pub fn shows_counts(self, state: ParedaoState) -> bool {
        match self {
            ResultsVisibility::Live => true,
            ResultsVisibility::AfterClose => state == ParedaoState::Closed,
            ResultsVisibility::Never => false,
        }
    }
}

/// A valid paredão: at least two participants with distinct ids, a title, and a window that
/// closes after it opens. Deserializing goes through the same checks as `Paredao::new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "ParedaoSpec")]
pub struct Paredao {
    pub id: ParedaoId,
    pub title: String,
    pub participants: Vec<Participant>,
    pub opens_at: DateTime<Utc>,
    pub closes_at: DateTime<Utc>,
    pub results_visibility: ResultsVisibility,
}

/// The unchecked shape of a paredão as it comes from configuration or storage.
#[derive(Debug, Clone, Deserialize)]
pub struct ParedaoSpec {
    pub id: ParedaoId,
    pub title: String,
    pub participants: Vec<Participant>,
    pub opens_at: DateTime<Utc>,
    pub closes_at: DateTime<Utc>,
    #[serde(default)]
    pub results_visibility: ResultsVisibility,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParedaoError {
    #[error("a paredão needs a title")]
    MissingTitle,
    #[error("a paredão needs at least two participants, got {0}")]
    TooFewParticipants(usize),
    #[error("participant '{0}' appears twice")]
    DuplicateParticipant(String),
    #[error("participant '{0}' needs a name")]
    MissingParticipantName(String),
    #[error("a paredão must close after it opens")]
    ClosesBeforeOpening,
}

impl TryFrom<ParedaoSpec> for Paredao {
    type Error = ParedaoError;
    fn try_from(spec: ParedaoSpec) -> Result<Self, Self::Error> {
        if spec.title.trim().is_empty() {
            return Err(ParedaoError::MissingTitle);
        }
        if spec.participants.len() < 2 {
            return Err(ParedaoError::TooFewParticipants(spec.participants.len()));
        }
        let mut seen = std::collections::HashSet::new();
        for p in &spec.participants {
            if !seen.insert(p.id.as_str()) {
                return Err(ParedaoError::DuplicateParticipant(p.id.to_string()));
            }
            if p.name.trim().is_empty() {
                return Err(ParedaoError::MissingParticipantName(p.id.to_string()));
            }
        }
        if spec.closes_at <= spec.opens_at {
            return Err(ParedaoError::ClosesBeforeOpening);
        }
        Ok(Paredao {
            id: spec.id,
            title: spec.title,
            participants: spec.participants,
            opens_at: spec.opens_at,
            closes_at: spec.closes_at,
            results_visibility: spec.results_visibility,
        })
    }
}

impl Paredao {
    pub fn new(spec: ParedaoSpec) -> Result<Self, ParedaoError> {
        spec.try_into()
    }

    /// Open from `opens_at` (inclusive) to `closes_at` (exclusive).
    pub fn state_at(&self, now: DateTime<Utc>) -> ParedaoState {
        if now < self.opens_at {
            ParedaoState::Scheduled
        } else if now < self.closes_at {
            ParedaoState::Open
        } else {
            ParedaoState::Closed
        }
    }

    pub fn participant(&self, id: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| p.id.as_str() == id)
    }

    /// The unchecked shape of this paredão, to change and check again.
    pub fn to_spec(&self) -> ParedaoSpec {
        ParedaoSpec {
            id: self.id.clone(),
            title: self.title.clone(),
            participants: self.participants.clone(),
            opens_at: self.opens_at,
            closes_at: self.closes_at,
            results_visibility: self.results_visibility,
        }
    }

    /// True when this paredão's window and `other`'s share a moment: both could be open at once.
    pub fn overlaps(&self, other: &Paredao) -> bool {
        self.opens_at < other.closes_at && other.opens_at < self.closes_at
    }
}

/// A slug made from free text (a title, a name): "Fábio Luz" → `fabio-luz`; `None` when
/// nothing of it is left (a name of symbols only).
pub fn slug_from(text: &str) -> Option<String> {
    let mut slug = slug::slugify(text);
    slug.truncate(crate::slug::MAX_SLUG_LEN);
    let slug = slug.trim_end_matches('-').to_string();
    (!slug.is_empty()).then_some(slug)
}

/// The paredão a viewer arriving now should see: the open one (the one that opened last, if
/// several are), else the next to open, else the one that closed last.
pub fn current<'a>(paredoes: impl IntoIterator<Item = &'a Paredao>, now: DateTime<Utc>) -> Option<&'a Paredao> {
    let mut open: Option<&Paredao> = None;
    let mut next: Option<&Paredao> = None;
    let mut last: Option<&Paredao> = None;
    for p in paredoes {
        match p.state_at(now) {
            ParedaoState::Open => {
                if open.is_none_or(|o| p.opens_at > o.opens_at) {
                    open = Some(p)
                }
            }
            ParedaoState::Scheduled => {
                if next.is_none_or(|n| p.opens_at < n.opens_at) {
                    next = Some(p)
                }
            }
            ParedaoState::Closed => {
                if last.is_none_or(|l| p.closes_at > l.closes_at) {
                    last = Some(p)
                }
            }
        }
    }
    open.or(next).or(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn participant(id: &str) -> Participant {
        Participant { id: ParticipantId::parse(id).unwrap(), name: id.to_uppercase(), photo_url: None }
    }

    fn spec(id: &str, opens: DateTime<Utc>, closes: DateTime<Utc>) -> ParedaoSpec {
        ParedaoSpec {
            id: ParedaoId::parse(id).unwrap(),
            title: "Paredão".into(),
            participants: vec![participant("ana"), participant("bia")],
            opens_at: opens,
            closes_at: closes,
            results_visibility: ResultsVisibility::Live,
        }
    }

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, h, 0, 0).unwrap()
    }

    #[test]
    fn state_follows_the_window() {
        let p = Paredao::new(spec("p", t(10), t(12))).unwrap();
        assert_eq!(p.state_at(t(9)), ParedaoState::Scheduled);
        assert_eq!(p.state_at(t(10)), ParedaoState::Open);
        assert_eq!(p.state_at(t(12) - Duration::milliseconds(1)), ParedaoState::Open);
        assert_eq!(p.state_at(t(12)), ParedaoState::Closed);
    }

    #[test]
    fn a_paredao_needs_two_distinct_named_participants_and_a_real_window() {
        let mut s = spec("p", t(10), t(12));
        s.participants.pop();
        assert_eq!(Paredao::new(s).unwrap_err(), ParedaoError::TooFewParticipants(1));

        let mut s = spec("p", t(10), t(12));
        s.participants.push(participant("ana"));
        assert_eq!(Paredao::new(s).unwrap_err(), ParedaoError::DuplicateParticipant("ana".into()));

        let mut s = spec("p", t(10), t(12));
        s.participants[0].name = " ".into();
        assert_eq!(Paredao::new(s).unwrap_err(), ParedaoError::MissingParticipantName("ana".into()));

        assert_eq!(Paredao::new(spec("p", t(12), t(12))).unwrap_err(), ParedaoError::ClosesBeforeOpening);

        let mut s = spec("p", t(10), t(12));
        s.title = "".into();
        assert_eq!(Paredao::new(s).unwrap_err(), ParedaoError::MissingTitle);
    }

    #[test]
    fn deserializing_runs_the_same_checks() {
        let json = r#"{"id":"p","title":"T","participants":[{"id":"ana","name":"Ana"}],
            "opens_at":"2026-11-22T10:00:00Z","closes_at":"2026-11-22T12:00:00Z"}"#;
        assert!(serde_json::from_str::<Paredao>(json).is_err());
        let bad_id = json.replace(r#""id":"p""#, r#""id":"P Q""#);
        assert!(serde_json::from_str::<Paredao>(&bad_id).is_err());
    }

    #[test]
    fn a_paredao_without_a_visibility_shows_live_results() {
        let json = r#"{"id":"p","title":"T","participants":[{"id":"ana","name":"Ana"},{"id":"bia","name":"Bia"}],
            "opens_at":"2026-11-22T10:00:00Z","closes_at":"2026-11-22T12:00:00Z"}"#;
        let p: Paredao = serde_json::from_str(json).unwrap();
        assert_eq!(p.results_visibility, ResultsVisibility::Live);
        let hidden: Paredao =
            serde_json::from_str(&json.replace(r#""title":"T""#, r#""title":"T","results_visibility":"after_close""#))
                .unwrap();
        assert_eq!(hidden.results_visibility, ResultsVisibility::AfterClose);
    }

    #[test]
    fn visibility_decides_when_counts_show() {
        use ParedaoState::*;
        assert!(ResultsVisibility::Live.shows_counts(Open));
        assert!(!ResultsVisibility::AfterClose.shows_counts(Open));
        assert!(ResultsVisibility::AfterClose.shows_counts(Closed));
        assert!(!ResultsVisibility::Never.shows_counts(Closed));
    }

    #[test]
    fn windows_that_share_a_moment_overlap_and_touching_ones_do_not() {
        let a = Paredao::new(spec("a", t(10), t(12))).unwrap();
        assert!(a.overlaps(&Paredao::new(spec("b", t(11), t(13))).unwrap()));
        assert!(a.overlaps(&Paredao::new(spec("b", t(9), t(20))).unwrap()));
        assert!(!a.overlaps(&Paredao::new(spec("b", t(12), t(13))).unwrap()));
        assert!(!a.overlaps(&Paredao::new(spec("b", t(8), t(10))).unwrap()));
    }

    #[test]
    fn slugs_come_from_names() {
        assert_eq!(slug_from("Fábio Luz").as_deref(), Some("fabio-luz"));
        assert_eq!(slug_from("5º Paredão!").as_deref(), Some("5o-paredao"));
        assert_eq!(slug_from("★★"), None);
    }

    #[test]
    fn current_prefers_open_then_next_then_last_closed() {
        let closed = Paredao::new(spec("closed", t(1), t(2))).unwrap();
        let open = Paredao::new(spec("open", t(3), t(20))).unwrap();
        let later = Paredao::new(spec("later", t(21), t(22))).unwrap();
        let all = [closed.clone(), open.clone(), later.clone()];
        assert_eq!(current(&all, t(5)).unwrap().id, open.id);
        assert_eq!(current(&all, t(20)).unwrap().id, later.id);
        assert_eq!(current(&all, t(23)).unwrap().id, later.id);
        assert_eq!(current([&closed], t(23)).unwrap().id, closed.id);
        assert!(current([], t(5)).is_none());
    }
}
