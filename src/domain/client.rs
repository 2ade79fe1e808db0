//! Who is asking: the caller behind a verified token, an actor with a role. How the token is
//! read and checked is `auth/`'s business; what a role may do is decided here.

use super::Role;

/// An authenticated client: whoever holds one has a valid token behind it.
#[derive(Debug, Clone)]
pub struct Client {
    /// The token's `sub`.
    pub name: String,
    pub role: Role,
}

/// A client asked for something its role may not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("role {role} may not do this")]
pub struct Forbidden {
    /// The role that asked.
    pub role: Role,
}

impl Client {
    /// [`Forbidden`] unless the client has one of `roles` (admin may do everything).
    pub fn require(&self, roles: &[Role]) -> Result<(), Forbidden> {
        if self.role == Role::Admin || roles.contains(&self.role) {
            Ok(())
        } else {
            Err(Forbidden { role: self.role })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(role: Role) -> Client {
        Client {
            name: "shop".into(),
            role,
        }
    }

    #[test]
    fn a_role_may_do_what_it_is_listed_for_and_admin_everything() {
        for (role, roles, allowed) in [
            (Role::Backend, &[Role::Backend, Role::Compliance][..], true),
            (
                Role::Compliance,
                &[Role::Backend, Role::Compliance][..],
                true,
            ),
            (
                Role::Marketer,
                &[Role::Backend, Role::Compliance][..],
                false,
            ),
            (Role::Admin, &[Role::Backend][..], true),
            (Role::Admin, &[][..], true),
            (Role::Backend, &[][..], false),
        ] {
            assert_eq!(
                client(role).require(roles).is_ok(),
                allowed,
                "{role} asking for what {roles:?} may do"
            );
        }
    }

    #[test]
    fn a_refusal_names_the_role() {
        let refused = client(Role::Marketer).require(&[Role::Compliance]);
        assert_eq!(
            refused,
            Err(Forbidden {
                role: Role::Marketer
            })
        );
        assert_eq!(
            refused.map_err(|e| e.to_string()),
            Err("role marketer may not do this".to_owned())
        );
    }
}
