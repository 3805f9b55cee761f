//! The bulk-import row: one CSV file giving every user of a tenant a licence, an extension, a
//! number and two add-ons, parsed, validated, applied and flushed as one batch.

use super::common::{request, Row};
use chrono::Utc;
use events::{Command, CommandId, TenantId, UserId};
use ledger::ledger::World;
use ledger::store::sled_store::SledStore;
use ledger::store::EventStore;
use std::path::Path;
use std::time::Instant;

/// A tenant with `rows` users and licences, then one import file giving each a phone_system
/// licence, an extension, a number and two add-ons: validated and applied as one batch.
pub(super) fn import_scenario(dir: &Path, rows: usize) -> Result<Row, String> {
    let store = SledStore::open(dir).map_err(|e| e.to_string())?;
    let mut world = World::default();
    let tenant = TenantId::new_random();
    let now = Utc::now();
    let mut encoded = Vec::new();
    let group = events::GroupId::new_random();
    let mut setup = vec![
        Command::CreateTenant {
            name: "importer".into(),
            billing_timezone: "UTC".into(),
            currency: "EUR".into(),
        },
        Command::CreateGroup {
            group,
            name: "everyone".into(),
            parent: None,
            contact_email: None,
        },
    ];
    let mut remaining = rows as u32;
    while remaining > 0 {
        let quantity = remaining.min(events::decide::PROVISION_QUANTITY_MAX);
        for code in ["phone_system", "device_ip_phone", "call_recording"] {
            setup.push(Command::ProvisionLicenses {
                license_type: code.into(),
                quantity,
            });
        }
        remaining -= quantity;
    }
    let names: Vec<String> = (0..rows).map(|i| format!("user {i:06}")).collect();
    for chunk in names.chunks(events::decide::USERS_PER_BATCH_MAX) {
        setup.push(Command::CreateUsers(
            chunk
                .iter()
                .map(|name| events::NewUser {
                    user: UserId::new_random(),
                    name: name.clone(),
                    group,
                    extension: None,
                    number: None,
                })
                .collect(),
        ));
    }
    for command in setup {
        world
            .decide_into(
                &request(tenant, command),
                CommandId::new_random(),
                now,
                &mut encoded,
            )
            .map_err(|e| e.to_string())?;
    }
    store.append(&encoded).map_err(|e| e.to_string())?;
    encoded.clear();
    let mut csv = String::from("Ext Key,Number,User,Addon license 1,Addon license 2\n");
    for (i, name) in names.iter().enumerate() {
        csv.push_str(&format!(
            "{},{},{name},device_ip_phone,call_recording\n",
            1000 + i,
            420_000_000 + i
        ));
    }
    let started = Instant::now();
    let parsed = ledger::http::imports::parse_csv(csv.as_bytes())?;
    let done = world
        .decide_into(
            &request(tenant, Command::Import(parsed)),
            CommandId::new_random(),
            now,
            &mut encoded,
        )
        .map_err(|e| e.to_string())?;
    store.append(&encoded).map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Row {
        scenario: format!("bulk import of {rows} rows (parse, validate, apply, flush)"),
        figure: format!("{seconds:.2} s, {} events", done.events.len()),
        reference: "—".into(),
        ratio: "—".into(),
    })
}
