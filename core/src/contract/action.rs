//! The actions an SMA handler returns (`docs/pstn-audio.md` section 6): one type per action,
//! required parameters as plain fields (so a missing one fails to parse, naming it) and
//! optional ones as `Option`s left out of the JSON when absent. Counts and durations are read
//! from numbers or numeric strings and written as numbers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::event::ParticipantTag;
use super::lenient;

/// An action, as `{"Type": ..., "Parameters": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "Type", content = "Parameters")]
pub enum Action {
    Speak(Speak),
    SpeakAndGetDigits(SpeakAndGetDigits),
    PlayAudio(PlayAudio),
    PlayAudioAndGetDigits(PlayAudioAndGetDigits),
    Pause(Pause),
    RecordAudio(RecordAudio),
    Hangup(Hangup),
    ReceiveDigits(ReceiveDigits),
    SendDigits(SendDigits),
    CallAndBridge(CallAndBridge),
    JoinChimeMeeting(JoinChimeMeeting),
    ModifyChimeMeetingAttendees(ModifyChimeMeetingAttendees),
    StartBotConversation(StartBotConversation),
    VoiceFocus(VoiceFocus),
    StartCallRecording(StartCallRecording),
    StopCallRecording(CallRecordingLeg),
    PauseCallRecording(CallRecordingLeg),
    ResumeCallRecording(CallRecordingLeg),
}

impl Action {
    /// Every action type the SMA knows.
    pub const TYPES: [&'static str; 18] = [
        "Speak",
        "SpeakAndGetDigits",
        "PlayAudio",
        "PlayAudioAndGetDigits",
        "Pause",
        "RecordAudio",
        "Hangup",
        "ReceiveDigits",
        "SendDigits",
        "CallAndBridge",
        "JoinChimeMeeting",
        "ModifyChimeMeetingAttendees",
        "StartBotConversation",
        "VoiceFocus",
        "StartCallRecording",
        "StopCallRecording",
        "PauseCallRecording",
        "ResumeCallRecording",
    ];

    /// The wire `Type`.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Speak(_) => "Speak",
            Self::SpeakAndGetDigits(_) => "SpeakAndGetDigits",
            Self::PlayAudio(_) => "PlayAudio",
            Self::PlayAudioAndGetDigits(_) => "PlayAudioAndGetDigits",
            Self::Pause(_) => "Pause",
            Self::RecordAudio(_) => "RecordAudio",
            Self::Hangup(_) => "Hangup",
            Self::ReceiveDigits(_) => "ReceiveDigits",
            Self::SendDigits(_) => "SendDigits",
            Self::CallAndBridge(_) => "CallAndBridge",
            Self::JoinChimeMeeting(_) => "JoinChimeMeeting",
            Self::ModifyChimeMeetingAttendees(_) => "ModifyChimeMeetingAttendees",
            Self::StartBotConversation(_) => "StartBotConversation",
            Self::VoiceFocus(_) => "VoiceFocus",
            Self::StartCallRecording(_) => "StartCallRecording",
            Self::StopCallRecording(_) => "StopCallRecording",
            Self::PauseCallRecording(_) => "PauseCallRecording",
            Self::ResumeCallRecording(_) => "ResumeCallRecording",
        }
    }

    /// Whether an `UpdateSipMediaApplicationCall` cuts this action off at once.
    #[must_use]
    pub fn is_interruptible(&self) -> bool {
        matches!(
            self,
            Self::PlayAudio(_) | Self::RecordAudio(_) | Self::Pause(_)
        )
    }

    /// `Hangup` of one leg with a SIP code (0 normal, 480 unavailable, 486 busy).
    #[must_use]
    pub fn hangup(call_id: impl Into<String>, sip_code: u16) -> Self {
        Self::Hangup(Hangup {
            call_id: Some(call_id.into()),
            participant_tag: None,
            sip_response_code: Some(sip_code.to_string()),
        })
    }
}

/// An S3 object to play: `{"Type": "S3", "BucketName", "Key"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AudioSource {
    #[serde(rename = "Type")]
    pub source_type: String,
    pub bucket_name: String,
    pub key: String,
}

impl AudioSource {
    #[must_use]
    pub fn s3(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            source_type: "S3".to_owned(),
            bucket_name: bucket.into(),
            key: key.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Speak {
    pub call_id: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_id: Option<String>,
}

/// `SpeechParameters` of `SpeakAndGetDigits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SpeechParameters {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_id: Option<String>,
}

/// `FailureSpeechParameters`: missing fields default to the `SpeechParameters`' values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FailureSpeechParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_id: Option<String>,
}

/// The digit-collection fields `SpeakAndGetDigits` and `PlayAudioAndGetDigits` share.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DigitOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_digits_regex: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_num",
        skip_serializing_if = "Option::is_none"
    )]
    pub min_number_of_digits: Option<u32>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_num",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_number_of_digits: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminator_digits: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_num",
        skip_serializing_if = "Option::is_none"
    )]
    pub in_between_digits_duration_in_milliseconds: Option<u32>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_num",
        skip_serializing_if = "Option::is_none"
    )]
    pub repeat: Option<u32>,
    /// How long each try waits for input. Required by the service.
    #[serde(deserialize_with = "lenient::num")]
    pub repeat_duration_in_milliseconds: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SpeakAndGetDigits {
    pub call_id: String,
    pub speech_parameters: SpeechParameters,
    pub failure_speech_parameters: FailureSpeechParameters,
    #[serde(flatten)]
    pub digits: DigitOptions,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlayAudio {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_tag: Option<ParticipantTag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playback_terminators: Option<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_num",
        skip_serializing_if = "Option::is_none"
    )]
    pub repeat: Option<u32>,
    pub audio_source: AudioSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlayAudioAndGetDigits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_tag: Option<ParticipantTag>,
    pub audio_source: AudioSource,
    pub failure_audio_source: AudioSource,
    #[serde(flatten)]
    pub digits: DigitOptions,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Pause {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_tag: Option<ParticipantTag>,
    #[serde(deserialize_with = "lenient::num")]
    pub duration_in_milliseconds: u32,
}

/// `RecordingDestination`: `{"Type": "S3", "BucketName", "Prefix"?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecordingDestination {
    #[serde(rename = "Type")]
    pub destination_type: String,
    pub bucket_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecordAudio {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_tag: Option<ParticipantTag>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_num",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration_in_seconds: Option<u32>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_num",
        skip_serializing_if = "Option::is_none"
    )]
    pub silence_duration_in_seconds: Option<u32>,
    #[serde(
        default,
        deserialize_with = "lenient::opt_num",
        skip_serializing_if = "Option::is_none"
    )]
    pub silence_threshold: Option<u32>,
    pub recording_terminators: Vec<String>,
    pub recording_destination: RecordingDestination,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Hangup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_tag: Option<ParticipantTag>,
    /// Sent as a string, as AWS's samples do; `0`, `480` or `486`.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub sip_response_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReceiveDigits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_tag: Option<ParticipantTag>,
    pub input_digits_regex: String,
    #[serde(deserialize_with = "lenient::num")]
    pub in_between_digits_duration_in_milliseconds: u32,
    #[serde(deserialize_with = "lenient::num")]
    pub flush_digits_duration_in_milliseconds: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendDigits {
    pub call_id: String,
    pub digits: String,
    #[serde(
        default,
        deserialize_with = "lenient::opt_num",
        skip_serializing_if = "Option::is_none"
    )]
    pub tone_duration_in_milliseconds: Option<u32>,
}

/// One `CallAndBridge` endpoint: a PSTN number (`Uri`) or a Voice Connector (`Arn`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BridgeEndpoint {
    pub bridge_endpoint_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CallAndBridge {
    #[serde(
        default,
        deserialize_with = "lenient::opt_num",
        skip_serializing_if = "Option::is_none"
    )]
    pub call_timeout_seconds: Option<u32>,
    pub caller_id_number: String,
    pub endpoints: Vec<BridgeEndpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ringback_tone: Option<AudioSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JoinChimeMeeting {
    pub join_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_tag: Option<ParticipantTag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meeting_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyChimeMeetingAttendees {
    pub operation: String,
    pub meeting_id: String,
    pub attendee_list: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_tag: Option<ParticipantTag>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartBotConversation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_tag: Option<ParticipantTag>,
    pub bot_alias_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale_id: Option<String>,
    /// Lex session state and welcome messages, passed through (at most 10 KB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VoiceFocus {
    pub enable: bool,
    pub call_id: String,
}

/// `Destination` of `StartCallRecording`: `{"Type": "S3", "Location": "bucket[/prefix]"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CallRecordingDestination {
    #[serde(rename = "Type")]
    pub destination_type: String,
    pub location: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartCallRecording {
    pub call_id: String,
    pub track: String,
    pub destination: CallRecordingDestination,
}

/// `StopCallRecording`, `PauseCallRecording` and `ResumeCallRecording` name only the leg.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CallRecordingLeg {
    pub call_id: String,
}
