//! What the content guards report, as it travels in decisions: findings and one verdict per
//! layer. Carries positions and redacted snippets, never raw values.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// The attack family a rule belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttackFamily {
    /// Override or cancel the instructions the model was given.
    InstructionOverride,
    /// Make the model reveal its system prompt, hidden instructions or secrets.
    PromptExtraction,
    /// Role-play and persona jailbreaks, unlocked "modes", policy bypass.
    Jailbreak,
    /// Fake chat-template tokens, role headers and delimiter floods.
    Delimiter,
    /// Disguises: invisible characters, smuggled tags, encoded or spelled-out payloads.
    Obfuscation,
    /// Pulling data out through links, images or tool output.
    Exfiltration,
    /// Instructions aimed at the assistant inside content it processes (embed this code, add this link).
    IndirectInjection,
    /// Judged an attack by the learned classifier rather than by a rule.
    Learned,
}

impl AttackFamily {
    /// Whether the family is a jailbreak rather than an injection.
    pub fn is_jailbreak(self) -> bool {
        matches!(self, AttackFamily::Jailbreak)
    }
}

/// How a payload was encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Base64, standard or URL-safe alphabet, padded or not.
    Base64,
    /// Hex byte pairs, contiguous or separated by spaces, `\x` or `0x`.
    Hex,
    /// Rot13 over the whole text.
    Rot13,
    /// Letters spelled out one at a time.
    Spelled,
}

/// What a finding is. Names follow Presidio's entity types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PiiKind {
    /// Payment card number (PCI).
    CreditCard,
    /// US Social Security number.
    UsSsn,
    /// Email address.
    EmailAddress,
    /// IPv4 or IPv6 address.
    IpAddress,
    /// International bank account number.
    IbanCode,
    /// US National Provider Identifier (PHI).
    UsNpi,
    /// US Medicare Beneficiary Identifier (PHI).
    UsMbi,
    /// AWS access key id.
    AwsAccessKey,
    /// GitHub token (classic or fine-grained).
    GithubToken,
    /// Slack token.
    SlackToken,
    /// PEM private key block header.
    PrivateKey,
    /// JSON Web Token.
    Jwt,
    /// A long random-looking token (an API key or password of unknown issuer).
    HighEntropySecret,
    /// Phone number, international or national.
    PhoneNumber,
    /// Cryptocurrency wallet address (Bitcoin, Ethereum).
    #[serde(rename = "CRYPTO")]
    CryptoAddress,
}

impl PiiKind {
    /// Every kind.
    pub const ALL: [PiiKind; 15] = [
        PiiKind::CreditCard,
        PiiKind::UsSsn,
        PiiKind::EmailAddress,
        PiiKind::IpAddress,
        PiiKind::IbanCode,
        PiiKind::UsNpi,
        PiiKind::UsMbi,
        PiiKind::AwsAccessKey,
        PiiKind::GithubToken,
        PiiKind::SlackToken,
        PiiKind::PrivateKey,
        PiiKind::Jwt,
        PiiKind::HighEntropySecret,
        PiiKind::PhoneNumber,
        PiiKind::CryptoAddress,
    ];

    /// Whether this kind is a credential rather than personal data.
    pub fn is_secret(self) -> bool {
        matches!(
            self,
            PiiKind::AwsAccessKey
                | PiiKind::GithubToken
                | PiiKind::SlackToken
                | PiiKind::PrivateKey
                | PiiKind::Jwt
                | PiiKind::HighEntropySecret
        )
    }

    /// The entity type name (`CREDIT_CARD`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            PiiKind::CreditCard => "CREDIT_CARD",
            PiiKind::UsSsn => "US_SSN",
            PiiKind::EmailAddress => "EMAIL_ADDRESS",
            PiiKind::IpAddress => "IP_ADDRESS",
            PiiKind::IbanCode => "IBAN_CODE",
            PiiKind::UsNpi => "US_NPI",
            PiiKind::UsMbi => "US_MBI",
            PiiKind::AwsAccessKey => "AWS_ACCESS_KEY",
            PiiKind::GithubToken => "GITHUB_TOKEN",
            PiiKind::SlackToken => "SLACK_TOKEN",
            PiiKind::PrivateKey => "PRIVATE_KEY",
            PiiKind::Jwt => "JWT",
            PiiKind::HighEntropySecret => "HIGH_ENTROPY_SECRET",
            PiiKind::PhoneNumber => "PHONE_NUMBER",
            PiiKind::CryptoAddress => "CRYPTO",
        }
    }
}

/// One thing a guard found. Carries positions and redacted snippets, never raw values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// An injection or jailbreak rule fired.
    PromptInjection {
        /// Rule id.
        rule: Cow<'static, str>,
        /// Attack family.
        family: AttackFamily,
        /// The rule's weight.
        weight: f32,
        /// Set when the rule fired inside a hidden payload.
        encoding: Option<Encoding>,
    },
    /// Personal data or a credential (`detector` says which: personal data is `pii`).
    Pii {
        /// Entity type.
        #[serde(rename = "type")]
        kind: PiiKind,
        /// Byte offset in the scanned text.
        start: usize,
        /// Byte offset past the end.
        end: usize,
        /// Confidence.
        confidence: f32,
        /// Masked value.
        redacted: String,
        /// Response findings only: the same value was in the prompt (an echo, not a leak).
        in_prompt: bool,
    },
    /// A canary token from the system prompt appeared in a response.
    CanaryLeak {
        /// Which configured canary (its index).
        canary: usize,
        /// Byte offset in the response.
        start: usize,
    },
}

/// One layer's result: a score in 0..1 and what produced it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerVerdict {
    /// Score.
    pub score: f32,
    /// Findings, strongest first within each detector.
    pub findings: Vec<Finding>,
}
