//! Provisioning a device in the homeserver, for every login that hands out a Matrix token
//! (the `authorization_code` grant with a device scope, compat login): the device must exist
//! in Synapse before the token is handed out, or Synapse refuses the token. The failure is a
//! [`DeviceError`], which each caller maps to its protocol (OAuth `temporarily_unavailable`,
//! Matrix `M_UNKNOWN`, both 503) and cleans up after as it must.

use crate::homeserver::{HomeserverConnection, HomeserverError, ProvisionRequest};

/// The device could not be created in the homeserver.
#[derive(Debug, thiserror::Error)]
#[error("cannot create the device in the homeserver")]
pub(crate) struct DeviceError(#[source] HomeserverError);

/// Makes sure the device exists in the homeserver. Synapse answers 404 for a user it does not
/// know: the user is provisioned, then the upsert is tried once more. A failure is logged here
/// (the caller's answer says only that the homeserver is unavailable).
#[tracing::instrument(
    name = "auth.device.provision",
    skip_all,
    fields(user.username = localpart, device.id = device_id)
)]
pub(crate) async fn provision_device(
    homeserver: &dyn HomeserverConnection,
    localpart: &str,
    device_id: &str,
    display_name: Option<&str>,
) -> Result<(), DeviceError> {
    upsert_provisioning(homeserver, localpart, device_id, display_name)
        .await
        .map_err(|error| {
            tracing::warn!(
                user.username = localpart,
                device.id = device_id,
                error = &error as &dyn std::error::Error,
                "cannot create the device in the homeserver"
            );
            DeviceError(error)
        })
}

async fn upsert_provisioning(
    homeserver: &dyn HomeserverConnection,
    localpart: &str,
    device_id: &str,
    display_name: Option<&str>,
) -> Result<(), HomeserverError> {
    match homeserver
        .upsert_device(localpart, device_id, display_name)
        .await
    {
        Ok(_) => return Ok(()),
        Err(error) if error.is_not_found() => {}
        Err(error) => return Err(error),
    }
    homeserver
        .provision_user(&ProvisionRequest::new(localpart))
        .await?;
    homeserver
        .upsert_device(localpart, device_id, display_name)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
