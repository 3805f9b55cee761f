//! Notification templates and contact addresses: what a tenant's expiry reminders say and
//! whom they go to.
//!
//! A template is a subject and a body in minijinja's syntax with a fixed set of variables
//! ([`TEMPLATE_VARIABLES`]). It is checked when it is set — it must parse and name no other
//! variable — so a stored template always renders; rendering is strict (an undefined value is
//! an error, never an empty string) and metered ([`TEMPLATE_FUEL_MAX`]), so a loop in a
//! template cannot hold up the deliverer. Templates cannot include or extend others: the
//! engine is built without loaders, macros or multi-template support.
//!
//! Contact addresses are checked by the `email_address` crate: a bare `local@domain.tld`,
//! without display text or a domain literal.

use email_address::{EmailAddress, Options};
use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};

/// Longest contact address, in bytes (RFC 5321's limit on a path).
pub const EMAIL_BYTES_MAX: usize = 254;
/// Longest template subject, in bytes.
pub const TEMPLATE_SUBJECT_BYTES_MAX: usize = 1_000;
/// Longest template body, in bytes.
pub const TEMPLATE_BODY_BYTES_MAX: usize = 16 * 1024;
/// Work one rendering may do (minijinja's fuel: about one unit per instruction).
pub const TEMPLATE_FUEL_MAX: u64 = 50_000;

/// The variables a template may name, with what each holds.
pub const TEMPLATE_VARIABLES: [(&str, &str); 6] = [
    ("group_name", "the group's name"),
    ("group_id", "the group's id"),
    ("tenant_name", "the tenant's name"),
    (
        "expiry_date",
        "the day the group's effective window ends, YYYY-MM-DD (UTC)",
    ),
    (
        "valid_until",
        "the instant the group's effective window ends, RFC 3339",
    ),
    (
        "days_left",
        "whole days from the reminder's due instant to the end of the window",
    ),
];

/// A tenant's reminder template: a subject and a body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationTemplate {
    pub subject: String,
    pub body: String,
}

/// What a template was refused for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateProblem {
    /// Longer than its bound.
    TooLong { field: &'static str, max: usize },
    /// Does not parse.
    Syntax {
        field: &'static str,
        message: String,
    },
    /// Names variables that are not in [`TEMPLATE_VARIABLES`], sorted.
    UnknownVariables {
        field: &'static str,
        names: Vec<String>,
    },
}

/// The values a reminder is rendered with; the names of [`TEMPLATE_VARIABLES`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReminderValues {
    pub group_name: String,
    pub group_id: String,
    pub tenant_name: String,
    pub expiry_date: String,
    pub valid_until: String,
    pub days_left: i64,
}

/// A rendered reminder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
}

impl Default for NotificationTemplate {
    /// The template of a tenant that has set none.
    fn default() -> Self {
        NotificationTemplate {
            subject: "{{ group_name }}: licences expire in {{ days_left }} days".into(),
            body: "The validity window of group {{ group_name }} ends on {{ expiry_date }} \
                   ({{ days_left }} days left). Its users are blocked from then on unless the \
                   window is extended."
                .into(),
        }
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(TEMPLATE_FUEL_MAX));
    env
}

impl NotificationTemplate {
    /// Whether both parts are within their bounds, parse and name only known variables.
    pub fn check(&self) -> Result<(), TemplateProblem> {
        let env = environment();
        for (field, source, max) in [
            ("subject", &self.subject, TEMPLATE_SUBJECT_BYTES_MAX),
            ("body", &self.body, TEMPLATE_BODY_BYTES_MAX),
        ] {
            if source.len() > max {
                return Err(TemplateProblem::TooLong { field, max });
            }
            let template =
                env.template_from_str(source)
                    .map_err(|error| TemplateProblem::Syntax {
                        field,
                        message: error.to_string(),
                    })?;
            let globals: Vec<&str> = env.globals().map(|(name, _)| name).collect();
            let mut unknown: Vec<String> = template
                .undeclared_variables(false)
                .into_iter()
                .filter(|name| {
                    !TEMPLATE_VARIABLES.iter().any(|(known, _)| known == name)
                        && !globals.contains(&name.as_str())
                })
                .collect();
            if !unknown.is_empty() {
                unknown.sort();
                return Err(TemplateProblem::UnknownVariables {
                    field,
                    names: unknown,
                });
            }
        }
        Ok(())
    }

    /// The subject and body with `values` filled in. A checked template fails only when its
    /// rendering runs out of fuel or a filter refuses a value: the error says so.
    pub fn render(&self, values: &ReminderValues) -> Result<Rendered, String> {
        let env = environment();
        let render = |source: &str| {
            env.render_str(source, values)
                .map_err(|error| error.to_string())
        };
        Ok(Rendered {
            subject: render(&self.subject)?,
            body: render(&self.body)?,
        })
    }
}

/// Whether `email` is a bare address `local@domain.tld` within [`EMAIL_BYTES_MAX`].
pub fn is_contact_email(email: &str) -> bool {
    let options = Options::default()
        .with_required_tld()
        .without_domain_literal()
        .without_display_text();
    email.len() <= EMAIL_BYTES_MAX && EmailAddress::parse_with_options(email, options).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> ReminderValues {
        ReminderValues {
            group_name: "Sales".into(),
            group_id: "g".into(),
            tenant_name: "Acme".into(),
            expiry_date: "2026-12-31".into(),
            valid_until: "2026-12-31T00:00:00Z".into(),
            days_left: 10,
        }
    }

    #[test]
    fn the_default_template_checks_and_renders_every_value_it_names() {
        let template = NotificationTemplate::default();
        assert_eq!(template.check(), Ok(()));
        let rendered = template.render(&values()).expect("renders");
        assert_eq!(rendered.subject, "Sales: licences expire in 10 days");
        assert!(rendered.body.contains("ends on 2026-12-31 (10 days left)"));
    }

    #[test]
    fn a_template_naming_an_unknown_variable_or_not_parsing_is_refused() {
        let unknown = NotificationTemplate {
            subject: "{{ group_name }} {{ secret }}".into(),
            body: "{% for x in range(2) %}{{ x }}{% endfor %}".into(),
        };
        assert_eq!(
            unknown.check(),
            Err(TemplateProblem::UnknownVariables {
                field: "subject",
                names: vec!["secret".into()]
            })
        );
        let broken = NotificationTemplate {
            subject: "ok".into(),
            body: "{{ group_name ".into(),
        };
        assert!(matches!(
            broken.check(),
            Err(TemplateProblem::Syntax { field: "body", .. })
        ));
    }

    #[test]
    fn a_runaway_template_stops_at_its_fuel() {
        let template = NotificationTemplate {
            subject: "x".into(),
            body: "{% for a in range(1000) %}{% for b in range(1000) %}.{% endfor %}{% endfor %}"
                .into(),
        };
        assert_eq!(template.check(), Ok(()));
        assert!(template.render(&values()).is_err());
    }

    #[test]
    fn contact_addresses_are_bare_addresses_with_a_domain() {
        assert!(is_contact_email("admin@example.com"));
        for bad in [
            "",
            "admin",
            "admin@localhost",
            "Admin <admin@example.com>",
            "admin@[127.0.0.1]",
            "a b@example.com",
        ] {
            assert!(!is_contact_email(bad), "{bad}");
        }
        assert!(!is_contact_email(&format!(
            "{}@example.com",
            "a".repeat(250)
        )));
    }
}
