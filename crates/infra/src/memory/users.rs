//! [`UserRepository`] in memory.

use async_trait::async_trait;
use inventory_domain::{NewUser, StoreError, User, UserError, UserId, UserRepository, Username};
use time::OffsetDateTime;

use super::MemoryStore;

#[async_trait]
impl UserRepository for MemoryStore {
    async fn create(&self, new: NewUser) -> Result<User, UserError> {
        let mut state = self.state();
        // Check and insert under one lock: no two registrations can both pass the check.
        if state.usernames.contains_key(&new.username) {
            return Err(UserError::UsernameTaken);
        }
        state.last_user_id += 1;
        let user = User {
            id: UserId(state.last_user_id),
            username: new.username,
            email: new.email,
            role: new.role,
            password_hash: new.password_hash,
            created_at: OffsetDateTime::now_utc(),
        };
        state.usernames.insert(user.username.clone(), user.id);
        state.users.insert(user.id, user.clone());
        Ok(user)
    }

    async fn find_by_username(&self, username: &Username) -> Result<Option<User>, StoreError> {
        let state = self.state();
        Ok(state
            .usernames
            .get(username)
            .and_then(|id| state.users.get(id))
            .cloned())
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.state().users.get(&id).cloned())
    }
}

#[cfg(test)]
mod tests {
    use inventory_domain::Role;

    use super::*;
    use crate::memory::MemorySettings;

    fn new_user(name: &str) -> NewUser {
        NewUser {
            username: Username::parse(name).unwrap(),
            email: None,
            role: Role::User,
            password_hash: "hash".into(),
        }
    }

    #[tokio::test]
    async fn create_and_find() {
        let store = MemoryStore::new(MemorySettings::default());
        let alice = UserRepository::create(&store, new_user("alice"))
            .await
            .unwrap();
        let bob = UserRepository::create(&store, new_user("bob"))
            .await
            .unwrap();
        assert_eq!((alice.id, bob.id), (UserId(1), UserId(2)));
        let found = store
            .find_by_username(&Username::parse("alice").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found, alice);
        assert_eq!(store.find_by_id(bob.id).await.unwrap(), Some(bob));
        assert_eq!(store.find_by_id(UserId(99)).await.unwrap(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_registrations_of_one_name_create_one_account() {
        let store = MemoryStore::new(MemorySettings::default());
        let attempts = (0..50).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { UserRepository::create(&store, new_user("carol")).await })
        });
        let results = futures::future::join_all(attempts).await;
        let created = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
        let taken = results
            .iter()
            .filter(|r| matches!(r, Ok(Err(UserError::UsernameTaken))))
            .count();
        assert_eq!((created, taken), (1, 49));
    }
}
