//! [`UserRepository`] over Redis.

use async_trait::async_trait;
use inventory_domain::{NewUser, StoreError, User, UserError, UserId, UserRepository, Username};
use redis::AsyncCommands;

use super::codec::{self, Fields};
use super::{RedisStore, keys, scripts, unavailable};

#[async_trait]
impl UserRepository for RedisStore {
    #[tracing::instrument(skip_all, fields(user.name = %new.username))]
    async fn create(&self, new: NewUser) -> Result<User, UserError> {
        let mut connection = self.pooled().await?;
        let id: u64 = connection
            .incr(keys::USER_IDS, 1)
            .await
            .map_err(|error| unavailable("allocating a user id", error))?;
        let user = User {
            id: UserId(id),
            username: new.username,
            email: new.email,
            role: new.role,
            password_hash: new.password_hash,
            created_at: codec::now(),
        };
        let created: i64 = scripts::CREATE_USER
            .key(keys::username(&user.username))
            .key(keys::user(user.id))
            .arg(id)
            .arg(user.username.as_str())
            .arg(user.role.as_str())
            .arg(&user.password_hash)
            .arg(codec::unix_ms(user.created_at))
            .arg(user.email.as_ref().map_or("", |email| email.as_str()))
            .invoke_async(&mut connection)
            .await
            .map_err(|error| unavailable("registering a user", error))?;
        if created == 1 {
            Ok(user)
        } else {
            Err(UserError::UsernameTaken)
        }
    }

    async fn find_by_username(&self, username: &Username) -> Result<Option<User>, StoreError> {
        let mut connection = self.data();
        let id: Option<u64> = connection
            .get(keys::username(username))
            .await
            .map_err(|error| unavailable("looking up a username", error))?;
        match id {
            Some(id) => self.find_by_id(UserId(id)).await,
            None => Ok(None),
        }
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let mut connection = self.data();
        let fields: Fields = connection
            .hgetall(keys::user(id))
            .await
            .map_err(|error| unavailable("reading a user", error))?;
        if fields.is_empty() {
            return Ok(None);
        }
        codec::user(&fields).map(Some)
    }
}
