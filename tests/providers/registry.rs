//! `by_name`: every shipped profile, with its documented contract.

use std::time::Duration;

use taskhook::provider::{by_name, Authenticity, ClientErrors, Events, NAMES};

const HOUR: u64 = 60 * 60;

#[test]
fn every_name_returns_its_profile_and_contract() {
    // (name, events, authenticity, client errors, horizon, default ttl, thin)
    let table = [
        (
            "apimart",
            Events::FinalOnly,
            Authenticity::None,
            ClientErrors::GiveUp,
            Duration::from_secs(140),
            Duration::from_secs(24 * HOUR),
            false,
        ),
        (
            "replicate",
            Events::EveryChange,
            Authenticity::StandardWebhooks,
            ClientErrors::Retry,
            Duration::from_secs(120),
            Duration::from_secs(24 * HOUR),
            false,
        ),
        (
            "fal",
            Events::FinalOnly,
            Authenticity::FalEd25519,
            ClientErrors::Retry,
            Duration::from_secs(2 * HOUR),
            Duration::from_secs(24 * HOUR),
            false,
        ),
        (
            "openai",
            Events::FinalOnly,
            Authenticity::StandardWebhooks,
            ClientErrors::Retry,
            Duration::from_secs(72 * HOUR),
            Duration::from_secs(144 * HOUR),
            true,
        ),
        (
            "standard-webhooks",
            Events::FinalOnly,
            Authenticity::StandardWebhooks,
            ClientErrors::Retry,
            Duration::from_secs(24 * HOUR),
            Duration::from_secs(48 * HOUR),
            false,
        ),
        (
            "kie",
            Events::FinalOnly,
            Authenticity::KieHmac,
            ClientErrors::GiveUp,
            Duration::from_secs(HOUR),
            Duration::from_secs(24 * HOUR),
            false,
        ),
        (
            "kling",
            Events::EveryChange,
            Authenticity::None,
            ClientErrors::GiveUp,
            Duration::from_secs(HOUR),
            Duration::from_secs(24 * HOUR),
            false,
        ),
        (
            "midjourney-proxy",
            Events::EveryChange,
            Authenticity::None,
            ClientErrors::NeverRetries,
            Duration::ZERO,
            Duration::from_secs(24 * HOUR),
            false,
        ),
    ];
    let names: Vec<&str> = table.iter().map(|row| row.0).collect();
    assert_eq!(NAMES, names.as_slice(), "NAMES lists them all, in order");
    for (name, events, authenticity, client_errors, horizon, ttl, thin) in table {
        let profile = by_name(name).unwrap_or_else(|| panic!("{name} is not shipped"));
        assert_eq!(profile.name(), name);
        assert_eq!(profile.events(), events, "{name}");
        assert_eq!(profile.authenticity(), authenticity, "{name}");
        assert_eq!(profile.client_errors(), client_errors, "{name}");
        assert_eq!(profile.retry_horizon(), horizon, "{name}");
        assert_eq!(profile.default_time_to_live(), ttl, "{name}");
        assert!(profile.default_time_to_live() >= profile.retry_horizon());
        assert_eq!(
            profile.signature_tolerance(),
            Duration::from_secs(300),
            "{name}"
        );
        assert_eq!(profile.is_thin(), thin, "{name}");
    }
}

#[test]
fn unknown_names() {
    for name in [
        "",
        "Replicate",
        "open-ai",
        "midjourney_proxy",
        "standard_webhooks",
        " fal",
    ] {
        assert!(by_name(name).is_none(), "{name:?}");
    }
}

#[test]
fn the_profiles_are_their_types() {
    use taskhook::provider::{
        Fal, Kie, Kling, MidjourneyProxy, OpenAi, Profile, Replicate, StandardWebhooks,
    };
    let names = [
        Replicate::new().name().to_owned(),
        Fal::new().name().to_owned(),
        OpenAi::new().name().to_owned(),
        StandardWebhooks::default().name().to_owned(),
        Kie::new().name().to_owned(),
        Kling::new().name().to_owned(),
        MidjourneyProxy::new().name().to_owned(),
    ];
    assert_eq!(names.as_slice(), &NAMES[1..]);
}
