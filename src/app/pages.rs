use std::collections::BTreeMap;

use secrecy::SecretString;

use crate::configuration::MessengerSettings;
use crate::domain::PageId;

/// A page Herald may send as.
pub struct Page {
    pub id: PageId,
    pub access_token: SecretString,
    pub region: Option<String>,
}

/// The configured pages; the first (by id) is the default for requests that name none.
pub struct Pages {
    pages: BTreeMap<PageId, Page>,
}

impl Pages {
    /// From the `[messenger.pages]` settings (already validated).
    pub fn from_settings(settings: &MessengerSettings) -> Pages {
        let pages = settings
            .pages
            .iter()
            .filter_map(|(id, p)| {
                let id = PageId::parse(id).ok()?;
                Some((
                    id.clone(),
                    Page {
                        id,
                        access_token: p.access_token.clone(),
                        region: p.region.clone(),
                    },
                ))
            })
            .collect();
        Pages { pages }
    }

    pub fn get(&self, id: &PageId) -> Option<&Page> {
        self.pages.get(id)
    }

    /// The page named, or the default page when none is named.
    pub fn resolve(&self, id: Option<&PageId>) -> Option<&Page> {
        match id {
            Some(id) => self.pages.get(id),
            None => self.pages.values().next(),
        }
    }
}
