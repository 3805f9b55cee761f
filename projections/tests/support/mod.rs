//! What the view tests share: a tenant built by deciding and folding commands, each of which
//! must be accepted, with the past index fed every event.

use chrono::{DateTime, Utc};
use events::{decide, evolve, Command, CommandId, Context, Tenant, TenantId};
use projections::past::PastIndex;
use uuid::Uuid;

pub struct Session {
    pub tenant: Tenant,
    pub past: PastIndex,
    /// The instant every command is decided at.
    pub now: DateTime<Utc>,
    commands: u128,
}

impl Session {
    /// A tenant `Acme` (default catalogue, UTC, EUR) with id `id`.
    pub fn new(id: u128, now: DateTime<Utc>) -> Session {
        let mut session = Session {
            tenant: Tenant::empty(TenantId(Uuid::from_u128(id))),
            past: PastIndex::default(),
            now,
            commands: 0,
        };
        session.run(Command::CreateTenant {
            name: "Acme".into(),
            billing_timezone: "UTC".into(),
            currency: "EUR".into(),
        });
        session
    }

    /// Decide `command` at `now` and fold its events; it must be accepted.
    #[track_caller]
    pub fn run(&mut self, command: Command) {
        self.commands += 1;
        let ctx = Context {
            now: self.now,
            command_id: CommandId(Uuid::from_u128(0xc0_0000 + self.commands)),
        };
        let shown = format!("{command:?}");
        let events = decide(&self.tenant, &command, &ctx)
            .unwrap_or_else(|e| panic!("{shown} was refused: {e}"));
        for event in &events {
            let version = self.tenant.version + 1;
            evolve(&mut self.tenant, event, version);
            self.past.apply(version, event, &self.tenant);
        }
    }
}
