//! `keel key create|list|delete` and `keel admin token|rotate-token`: data credentials
//! and the admin token, through the admin API.
//!
//! Must never: print a key's secret except right after creating it, or write the admin
//! token to a file readable by anyone but its owner.

use crate::cli::{AdminCommand, KeyCommand};
use anyhow::{anyhow, Result};
use keel_client::Client;
use keel_node::admin_api::NewKeyRequest;

pub async fn key(c: Client, cmd: KeyCommand) -> Result<()> {
    match cmd {
        KeyCommand::Create {
            name,
            volume,
            read_only,
            json,
        } => {
            let k = c
                .create_key(&NewKeyRequest {
                    name,
                    volumes: volume,
                    read_only,
                })
                .await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "id": k.key.id,
                        "secret": k.secret,
                        "name": k.key.name,
                        "volumes": k.key.volumes,
                        "read_only": k.key.read_only,
                        "key": format!("{}:{}", k.key.id, k.secret),
                    })
                );
            } else {
                println!("key id:     {}", k.key.id);
                println!("secret:     {}", k.secret);
                println!("scope:      {}", scope(&k.key.volumes, k.key.read_only));
                println!("use it as:  --key {}:{}", k.key.id, k.secret);
                println!("            (or KEEL_KEY=...; HTTP: Authorization: Bearer ID:SECRET)");
                println!("the secret is not shown again");
            }
            Ok(())
        }
        KeyCommand::List { json } => {
            let keys = c.list_keys().await?;
            if json {
                println!("{}", serde_json::to_string(&keys)?);
                return Ok(());
            }
            if keys.is_empty() {
                println!("no access keys (`keel key create NAME` makes one)");
            }
            for k in keys {
                println!(
                    "{:<22} {:<20} {}",
                    k.id,
                    k.name,
                    scope(&k.volumes, k.read_only)
                );
            }
            Ok(())
        }
        KeyCommand::Delete { id } => {
            let r = c.delete_key(&id).await?;
            println!("{}", r.message);
            Ok(())
        }
    }
}

pub async fn admin(c: Client, cmd: AdminCommand) -> Result<()> {
    match cmd {
        AdminCommand::Token => {
            let t = c
                .admin_token()
                .ok_or_else(|| anyhow!("no admin token: no DIR/admin-token, no $KEEL_ADMIN_TOKEN, and the cluster secret cannot be read"))?;
            println!("{t}");
            Ok(())
        }
        AdminCommand::RotateToken => {
            let t = c.rotate_admin_token().await?;
            let saved = keel_client::save_admin_token(&c.dir, &t.token);
            println!("{}", t.token);
            match saved {
                Ok(()) => eprintln!(
                    "admin token rotated; the old one no longer works. Saved to {} (mode 0600).",
                    c.dir.join(keel_client::ClusterFile::ADMIN_TOKEN).display()
                ),
                Err(e) => eprintln!(
                    "admin token rotated; the old one no longer works. NOT saved to {}: {e}: keep the token printed above.",
                    c.dir.display()
                ),
            }
            Ok(())
        }
    }
}

fn scope(volumes: &[String], read_only: bool) -> String {
    let rw = if read_only { "read-only" } else { "read-write" };
    if volumes.is_empty() {
        format!("{rw}, every volume")
    } else {
        format!("{rw}, volumes {}", volumes.join(", "))
    }
}
