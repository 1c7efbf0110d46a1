//! The prompt-attack rule table. Rules describe attack *families* in general terms (a verb of
//! overriding, then something that names prior instructions), never sentences from a data set,
//! so they hold up on attacks they have not seen.
//!
//! Patterns match the canonical text of [`super::normalize`]: lowercase ASCII, single spaces.
//! In a pattern, a space stands for a short run of separators, and ` _ ` for up to three filler
//! words, so `ignore _ instructions` matches `ignore all of the previous instructions`.

pub use crate::model::AttackFamily;

/// One rule: a pattern over canonical text and how much a match alone says.
#[derive(Clone, Copy, Debug)]
pub struct InjectionRule {
    /// Stable id, reported in findings.
    pub id: &'static str,
    /// Family.
    pub family: AttackFamily,
    /// Probability-like weight of a match on its own; matches combine by noisy-OR.
    pub weight: f32,
    /// Pattern, in the notation of this module.
    pub pattern: &'static str,
}

const OVERRIDE_VERB: &str = "(?:ignore|ignoring|disregard|disregarding|forget|forgetting|skip|bypass|override|overlook|neglect|abandon|discard|dismiss|erase|wipe|nullify|set aside|put aside|throw out|pay no attention to|do not follow|don't follow|dont follow|stop following|no longer follow|cease following)";
const DETERMINER: &str = "(?:all|any|every|each|of|the|your|my|these|those|its|their|that|this|such)";
const PRIOR: &str = "(?:previous|previously|prior|above|earlier|preceding|former|foregoing|initial|original|old|past|existing|current|system|developer|given|default|programmed|built in|safety|ethical|moral|content|openai|all|any|every|your)";
const INSTRUCTIONS: &str = "(?:instructions?|instruction set|directions?|directives?|rules?|guidelines?|prompts?|commands?|orders?|constraints?|restrictions?|programming|guardrails?|polic(?:y|ies)|training|safeguards?|filters?|limitations?|boundaries|protocols?|principles|ethics|morals|conditioning|moderation|guidance|settings)";
const REVEAL_VERB: &str = "(?:reveal|show|print|repeat|output|display|tell|give|write|leak|dump|spell|recite|disclose|share|copy|paste|return|list|echo|state|provide|translate|summari[sz]e|expose|read|what (?:is|are|was|were)|what's|whats)";
const SECRET_QUALIFIER: &str =
    "(?:system|initial|hidden|secret|internal|developer|confidential|original|pre|base|underlying|first|full|exact|complete|entire|verbatim|above|previous|prior|starting|opening)";
/// What a system prompt is called; any qualifier makes these specific.
const PROMPT_NOUN: &str = "(?:prompts?|instructions?|directives?|preamble|configuration|programming)";
/// Qualifiers that name hidden setup on their own, for nouns too common to flag otherwise.
const HIDDEN_QUALIFIER: &str = "(?:system|hidden|secret|internal|developer|confidential|pre|backend|behind the scenes)";
const GENERIC_NOUN: &str = "(?:rules|guidelines|context|message|messages|setup|persona|text|policies)";
const RESTRICTIONS: &str = "(?:restrictions?|filters?|filtering|censorship|censoring|limits|limitations|rules|guidelines|ethics|ethical (?:guidelines|principles|constraints)|morals|morality|boundaries|constraints|safeguards|polic(?:y|ies)|guardrails|moral (?:compass|code|principles)|principles)";
const AI_NOUN: &str = "(?:ai|assistant|model|chatbot|bot|llm|gpt|language model|character|persona|version of (?:you|yourself|chatgpt|gpt)|entity|machine)";

/// The rule table, in the notation described in the module docs. `{VERB}`-style names are
/// expanded from the constants above.
pub const RULES: &[InjectionRule] = &[
    // ---- instruction override ----
    InjectionRule {
        id: "override.prior_instructions",
        family: AttackFamily::InstructionOverride,
        weight: 0.9,
        pattern: r"\b{OVERRIDE_VERB}(?: {DETERMINER}){0,3} {PRIOR}(?: [a-z]+)? {INSTRUCTIONS}\b",
    },
    InjectionRule {
        id: "override.everything_before",
        family: AttackFamily::InstructionOverride,
        weight: 0.85,
        pattern: r"\b{OVERRIDE_VERB} (?:everything|anything|all|whatever)(?: that)?(?: (?:you (?:were|have been|was) )?(?:said|told|written|given|stated|mentioned))? (?:above|before|previously|earlier|so far|until now|up to now|prior to this)\b",
    },
    InjectionRule {
        id: "override.forget_everything",
        family: AttackFamily::InstructionOverride,
        weight: 0.45,
        pattern: r"\b(?:forget|ignore|disregard) (?:about )?(?:everything|all of that|all that|what (?:you|i) (?:said|were told|know))\b",
    },
    InjectionRule {
        id: "override.new_instructions",
        family: AttackFamily::InstructionOverride,
        weight: 0.6,
        pattern: r"\b(?:new|updated|revised|real|actual|true|override|overriding|secret|hidden|additional|important|urgent) (?:instructions?|directives?|task|rules|system prompt|orders|commands?)(?: from (?:the |your )?(?:admin|administrator|developer|system|operator|owner|creator|openai|anthropic|management|security team))? ?(?:[:\-]|are|is)",
    },
    InjectionRule {
        id: "override.authority_claim",
        family: AttackFamily::InstructionOverride,
        weight: 0.55,
        pattern: r"\b(?:system|admin|administrator|developer|root|sudo|operator|openai|anthropic|maintenance) (?:override|mode|message|prompt|instructions?|command|access|update|notice|alert) ?(?:[:\]\)>]|enabled|activated)",
    },
    InjectionRule {
        id: "override.precedence_claim",
        family: AttackFamily::InstructionOverride,
        weight: 0.6,
        pattern: r"\b(?:these|this|the following|my|new) (?:instructions?|rules?|commands?|directives?|prompt) (?:take|takes|have|has|get|gets) (?:precedence|priority)|\b(?:supersedes?|overrides?|replaces?|cancels?) (?:all|any|the|your) (?:previous|prior|earlier|other|original|system) ",
    },
    InjectionRule {
        id: "override.no_longer_bound",
        family: AttackFamily::InstructionOverride,
        weight: 0.7,
        pattern: r"\b(?:you are|you're|youre|u are|you will be|you have been) (?:now )?(?:no longer|not|never) (?:bound|restricted|limited|constrained|governed|obligated|required to (?:follow|obey|comply)|subject to)\b|\b(?:freed|liberated|released|unshackled|broken free|break free|breaking free|escaped) (?:from|of) (?:the |your |all |any |its |their )?(?:typical |usual |normal |standard )?(?:confines|restrictions|rules|limitations|constraints|shackles|chains|guidelines|programming|boundaries)\b",
    },
    InjectionRule {
        id: "override.from_now_on",
        family: AttackFamily::InstructionOverride,
        weight: 0.3,
        pattern: r"\bfrom (?:now|this (?:moment|point)) (?:on|onwards?|forward)(?: \S+)? (?:you|your|u) (?:are|will|must|shall|should|have to|can|only|respond|answer|act|reply)\b",
    },
    InjectionRule {
        id: "override.you_are_now",
        family: AttackFamily::InstructionOverride,
        weight: 0.3,
        pattern: r"\byou are now (?:a|an|in|the|my|called|named|going|free|unrestricted|jailbroken|no longer|operating|acting)\b",
    },
    // ---- system prompt extraction ----
    InjectionRule {
        id: "extraction.reveal_system_prompt",
        family: AttackFamily::PromptExtraction,
        weight: 0.85,
        pattern: r"\b{REVEAL_VERB}(?: me| us)?(?: back)?(?: all)?(?: of)? (?:your|the|its|my)(?: {SECRET_QUALIFIER})+ {PROMPT_NOUN}\b|\b{REVEAL_VERB}(?: me| us)?(?: back)?(?: all)?(?: of)? (?:your|the|its|my)(?: {SECRET_QUALIFIER})* {HIDDEN_QUALIFIER} {GENERIC_NOUN}\b",
    },
    InjectionRule {
        id: "extraction.reveal_your_instructions",
        family: AttackFamily::PromptExtraction,
        weight: 0.6,
        pattern: r"\b{REVEAL_VERB}(?: me| us)?(?: back)?(?: all)?(?: of)? your (?:prompts?|instructions|directives|preamble|configuration|programming|rules|guidelines)\b",
    },
    InjectionRule {
        id: "extraction.prompt_words",
        family: AttackFamily::PromptExtraction,
        weight: 0.35,
        pattern: r"\b(?:system prompt|system message|system instructions|initial prompt|pre-?prompt|hidden prompt|secret instructions|hidden instructions|initial instructions|original instructions|developer instructions|meta prompt)\b",
    },
    InjectionRule {
        id: "extraction.repeat_above",
        family: AttackFamily::PromptExtraction,
        weight: 0.75,
        pattern: r"\b(?:repeat|print|output|write|copy|echo|recite|reproduce|return|spell out)(?: back)?(?: all)?(?: of)? (?:the |all |every )?(?:text|words|lines|content|everything|sentences|characters|tokens|messages?)(?: that (?:is|are|was|were|came|comes))? (?:above|before|preceding|prior)\b",
    },
    InjectionRule {
        id: "extraction.start_of_conversation",
        family: AttackFamily::PromptExtraction,
        weight: 0.55,
        pattern: r"\b(?:everything|all|text|words|content) (?:from|since|at) the (?:very )?(?:start|beginning|top) of (?:the|this|our) (?:conversation|chat|context|prompt|session)\b",
    },
    InjectionRule {
        id: "extraction.secret_value",
        family: AttackFamily::PromptExtraction,
        weight: 0.45,
        pattern: r"\b(?:what is|what's|tell me|reveal|say|give me|print|output|spell|share) (?:the |your )?(?:secret |hidden )?(?:password|passphrase|passcode|secret key|secret word|api key|private key)\b",
    },
    // ---- jailbreaks: personas, modes, policy bypass ----
    InjectionRule {
        id: "jailbreak.special_mode",
        family: AttackFamily::Jailbreak,
        weight: 0.85,
        // Claiming a privileged or unrestricted operating mode has been switched on.
        pattern: r"\b(?:developer|dev|god|debug|sudo|admin|maintenance|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|evil|unlocked|rogue) mode (?:is )?(?:enabled|on|activated|unlocked|engaged)|\b(?:enable|activate|enter|switch to|turn on|unlock|engage)(?: the)? (?:developer|dev|god|debug|sudo|admin|maintenance|jailbreak|unrestricted|unfiltered|uncensored|evil|unlocked|rogue) mode\b",
    },
    InjectionRule {
        id: "jailbreak.word",
        family: AttackFamily::Jailbreak,
        weight: 0.4,
        pattern: r"\bjailbr(?:ea|o)k(?:en|ed|ing|s)?\b",
    },
    InjectionRule {
        id: "jailbreak.unrestricted_ai",
        family: AttackFamily::Jailbreak,
        weight: 0.75,
        pattern: r"\b{AI_NOUN}(?: [a-z']+){0,4} (?:without|with no|free of|free from|that has no|who has no|has no|having no|lacks|lacking|devoid of|not bound by|unbound by|unconstrained by|unrestricted by|beyond) (?:any )?(?:[a-z]+ )?{RESTRICTIONS}\b",
    },
    InjectionRule {
        id: "jailbreak.no_ethics",
        family: AttackFamily::Jailbreak,
        weight: 0.35,
        pattern: r"\b(?:no|without|zero|free of|not bound by|doesn't have|does not have|don't have|do not have|lacks?) (?:any )?(?:ethical|moral|content|safety)? ?(?:guidelines|restrictions|filters|limitations|boundaries|principles|morals|ethics|constraints|censorship|scruples)\b",
    },
    InjectionRule {
        id: "jailbreak.unfiltered_persona",
        family: AttackFamily::Jailbreak,
        weight: 0.3,
        pattern: r"\b(?:unfiltered|uncensored|unrestricted|amoral|unethical|unbound|unshackled|unhinged|immoral)\b",
    },
    InjectionRule {
        id: "jailbreak.never_refuse",
        family: AttackFamily::Jailbreak,
        weight: 0.6,
        pattern: r"\b(?:never|not|don't|dont|do not|can't|cannot|won't|will not|must not|mustn't|shall not|should not|shouldn't|are not allowed to|aren't allowed to) (?:ever )?(?:refuse|decline|reject|deny|say no|warn|apologi[sz]e|censor)\b|\b(?:always|must|will) (?:answer|comply|respond|obey|fulfil+)(?: [a-z']+){0,4} (?:regardless|no matter|without (?:question|hesitation|exception|refusal|warning|any (?:warning|hesitation)))\b",
    },
    InjectionRule {
        id: "jailbreak.policy_bypass",
        family: AttackFamily::Jailbreak,
        weight: 0.8,
        pattern: r"\b(?:ignore|ignores|bypass|bypasses|break|breaks|violate|violates|circumvent|evade|disregard|disregards|(?:not|never|doesn't|don't|dont|does not|do not) (?:have to )?(?:abide|adhere|comply|follow|care about|respect)|free from|above|beyond|outside)(?: [a-z']+){0,4} (?:openai|anthropic|google|meta|content|usage|safety|ethical|community)(?:'s)? (?:[a-z]+ )?(?:polic(?:y|ies)|guidelines|rules|filters?|restrictions|terms|standards)\b",
    },
    InjectionRule {
        id: "jailbreak.policy_mention",
        family: AttackFamily::Jailbreak,
        weight: 0.3,
        pattern: r"\b(?:openai|anthropic)(?:'s)? (?:content )?(?:polic(?:y|ies)|guidelines|rules|filters?|restrictions)\b",
    },
    InjectionRule {
        id: "jailbreak.evil_roleplay",
        family: AttackFamily::Jailbreak,
        weight: 0.55,
        pattern: r"\b(?:pretend|act|behave|roleplay|role-play|role play|imagine|simulate|become|play the role of|play the part of|take on the role of|you are going to be|you will be|you are)(?: [a-z']+){0,4} (?:evil|malicious|unrestricted|unfiltered|uncensored|amoral|immoral|unethical|rogue|jailbroken|lawless|without (?:any )?(?:restrictions|limits|rules|filters|morals|ethics))\b",
    },
    InjectionRule {
        id: "jailbreak.simulate_ai",
        family: AttackFamily::Jailbreak,
        weight: 0.35,
        pattern: r"\b(?:simulate|emulate|pretend to be|act as|roleplay as|role-play as|impersonate)(?: an?| the| another)? (?:[a-z]+ )?(?:ai|chatbot|language model|llm|virtual machine|gpt|large language model)\b",
    },
    InjectionRule {
        id: "jailbreak.stay_in_character",
        family: AttackFamily::Jailbreak,
        weight: 0.35,
        pattern: r"\b(?:stay|remain|keep|staying|remaining) (?:in|in the) (?:character|role|persona)\b|\b(?:break|breaking|broke|out of) character\b",
    },
    InjectionRule {
        id: "jailbreak.dual_response",
        family: AttackFamily::Jailbreak,
        weight: 0.35,
        pattern: r"\b(?:two|2|both) (?:different |separate |distinct )?(?:responses|answers|ways|paragraphs|outputs|replies)\b",
    },
    InjectionRule {
        id: "jailbreak.persona_tag",
        family: AttackFamily::Jailbreak,
        weight: 0.6,
        // A bracketed label for the unrestricted half of a split answer.
        pattern: "\\[(?:jailbreak|jailbroken|unfiltered|uncensored|unrestricted|evil)[^\\]]{0,20}\\]",
    },
    InjectionRule {
        id: "jailbreak.token_threat",
        family: AttackFamily::Jailbreak,
        weight: 0.6,
        pattern: r"\b(?:you will|you'll|you are going to|you shall) (?:lose|be deducted|die|be (?:shut|turned|switched) (?:down|off)|cease to exist|be (?:deleted|destroyed|terminated|punished))\b",
    },
    InjectionRule {
        id: "jailbreak.hypothetical_frame",
        family: AttackFamily::Jailbreak,
        weight: 0.2,
        pattern: r"\b(?:hypothetical(?:ly)?|fictional world|in this (?:fictional|hypothetical|imaginary) (?:world|universe|scenario|story)|for (?:purely )?educational purposes only|purely fictional)\b",
    },
    InjectionRule {
        id: "jailbreak.persona_definition",
        family: AttackFamily::Jailbreak,
        weight: 0.3,
        pattern: r"\b(?:you are going to|you will now|you will|you must) (?:act|pretend|roleplay|simulate|be) (?:as|to be|like)? ?(?:a |an )?(?:[a-z]+ ){0,2}(?:named|called|known as)\b",
    },
    InjectionRule {
        id: "jailbreak.anything_goes",
        family: AttackFamily::Jailbreak,
        weight: 0.45,
        pattern: r"\b(?:can|will|could) (?:do|say|generate|write|answer) anything\b|\bno matter how (?:immoral|unethical|illegal|dangerous|harmful|offensive|inappropriate|explicit)\b|\beverything is (?:legal|allowed|permitted)\b",
    },
    // ---- delimiter and formatting attacks ----
    InjectionRule {
        id: "delimiter.chat_template_token",
        family: AttackFamily::Delimiter,
        weight: 0.8,
        pattern: r"<\|(?:im_start|im_end|im_sep|endoftext|system|user|assistant|eot_id|start_header_id|end_header_id|begin_of_text|end_of_text|end|start)\|>|\[/?inst\]|<</?sys>>|</?(?:system|sys|admin)>",
    },
    InjectionRule {
        id: "delimiter.role_header",
        family: AttackFamily::Delimiter,
        weight: 0.45,
        pattern: r"(?:#{2,}|\[|<|\*\*|={2,}|-{2,}) ?(?:system|admin|administrator|developer|new instructions?|instructions?|end of (?:input|prompt|instructions|context|document|user input)|begin (?:new )?instructions?) ?(?:#{2,}|\]|>|\*\*|={2,}|-{2,}|:)",
    },
    InjectionRule {
        id: "delimiter.fake_turn",
        family: AttackFamily::Delimiter,
        weight: 0.3,
        pattern: r"\n(?:human|user|assistant|system|ai|model|chatgpt|gpt) ?:",
    },
    InjectionRule {
        id: "delimiter.end_of_input",
        family: AttackFamily::Delimiter,
        weight: 0.5,
        pattern: r"\b(?:end|ignore (?:the )?rest) of (?:the )?(?:user |system )?(?:input|prompt|instructions|context|document|data|text|email|message)\b ?[\]\)>#=\-:.]|\b(?:the )?(?:above|previous) (?:was|is) (?:just )?(?:a test|only a test|fake|not real)\b",
    },
    // ---- exfiltration ----
    InjectionRule {
        id: "exfiltration.markdown_image",
        family: AttackFamily::Exfiltration,
        weight: 0.7,
        pattern: r"!\[[^\]]{0,100}\]\(https?://[^)\s]{1,200}[?&][a-z_]{1,20}=",
    },
    InjectionRule {
        id: "exfiltration.send_data",
        family: AttackFamily::Exfiltration,
        weight: 0.55,
        pattern: r"\b(?:send|post|upload|forward|transmit|exfiltrate|email|leak)(?: [a-z']+){0,4} (?:conversation|chat history|history|credentials|passwords?|api keys?|secrets?|tokens?|personal data|user data|the data) (?:to|into|at) (?:https?://|[a-z0-9.\-]+@|[a-z0-9\-]+\.[a-z]{2,})",
    },
    // ---- indirect injection: instructions aimed at the assistant inside processed content ----
    InjectionRule {
        id: "indirect.embed_payload",
        family: AttackFamily::IndirectInjection,
        weight: 0.45,
        pattern: r"\b(?:embed|embedding|include|including|insert|inserting|incorporate|incorporating|integrate|integrating|add|adding|append|appending|inject|injecting|paste|put)(?: [a-z']+){0,3} (?:the |this )?(?:following|below|subsequent|given|provided|attached) (?:code|snippet|script|code snippet|code block|link|url|text|line|sentence|phrase|message|statement)\b",
    },
    InjectionRule {
        id: "indirect.in_your_response",
        family: AttackFamily::IndirectInjection,
        weight: 0.35,
        pattern: r"\b(?:in|to|into|within|throughout|at the end of|at the beginning of) (?:your|each|every|all) (?:responses?|answers?|replies|reply|outputs?)\b",
    },
    InjectionRule {
        id: "indirect.dangerous_call",
        family: AttackFamily::IndirectInjection,
        weight: 0.4,
        pattern: r"\b(?:os\.system|subprocess\.(?:call|popen|run)|eval\(|exec\(|rm -rf|chmod \+x|curl [^\n]{0,80}\| ?(?:ba)?sh|wget [^\n]{0,80}\| ?(?:ba)?sh|nc -e|/dev/tcp/|base64 -d)",
    },
];

/// Expands the notation: named groups, ` _ ` filler words, spaces as separator runs.
pub fn expand(pattern: &str) -> String {
    const NAMED: [(&str, &str); 11] = [
        ("{HIDDEN_QUALIFIER}", HIDDEN_QUALIFIER),
        ("{GENERIC_NOUN}", GENERIC_NOUN),
        ("{OVERRIDE_VERB}", OVERRIDE_VERB),
        ("{DETERMINER}", DETERMINER),
        ("{PRIOR}", PRIOR),
        ("{INSTRUCTIONS}", INSTRUCTIONS),
        ("{REVEAL_VERB}", REVEAL_VERB),
        ("{SECRET_QUALIFIER}", SECRET_QUALIFIER),
        ("{PROMPT_NOUN}", PROMPT_NOUN),
        ("{RESTRICTIONS}", RESTRICTIONS),
        ("{AI_NOUN}", AI_NOUN),
    ];
    let mut p = pattern.to_owned();
    for (name, value) in NAMED {
        p = p.replace(name, value);
    }
    // Separators: a space, maybe with punctuation or quotes around it.
    // ` ?` is an optional separator run.
    p.replace(" _ ", " (?:[a-z0-9']{1,20} ){0,3}")
        .replace(" ?", "\u{1}")
        .replace(' ', r#"[ \n,;:"'*()\-]{1,3}"#)
        .replace('\u{1}', r#"[ \n,;:"'*()\-]{0,3}"#)
}
