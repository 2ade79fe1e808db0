//! The rules of every file put together: what each file claimed, checked against each other
//! (every rule defined, tags used before they retire) and made a [`PolicySet`].

use super::*;

impl Builder {
    /// Cross-file checks, and the compiled set when every rule the engine needs is present.
    pub(super) fn finish(
        self,
        dir: &str,
        errors: &mut Vec<PolicyError>,
        version: String,
        files: Vec<String>,
    ) -> Option<PolicySet> {
        // A rule refused for a bad value would also show up as missing: only report absent
        // rules when everything that was written is sound.
        if errors.is_empty() {
            errors.extend(self.missing().into_iter().map(|what| PolicyError {
                file: dir.to_owned(),
                line: None,
                column: None,
                message: format!("no policy file defines {what}"),
            }));
        }
        self.check_across(dir, errors);
        if !errors.is_empty() {
            return None;
        }
        self.into_set(version, files)
    }

    /// The rules the engine needs that no file defines, each named with what it is for.
    fn missing(&self) -> Vec<String> {
        let mut missing = Vec::new();
        for (role, rule) in Role::ALL.iter().zip(&self.roles) {
            if rule.is_none() {
                missing.push(format!(
                    "`roles.{role}` (which categories the {role} role may send)"
                ));
            }
        }
        for (cat, rule) in Category::ALL.iter().zip(&self.consent) {
            if rule.is_none() {
                missing.push(format!("`consent.{cat}` (the consent {cat} needs)"));
            }
        }
        for (name, w) in [
            ("standard", &self.standard),
            ("user_ref", &self.user_ref),
            ("human_agent", &self.human_agent),
        ] {
            if w.is_none() {
                missing.push(format!("`window.{name}`"));
            }
        }
        for cat in Category::ALL {
            if self.inside[category_index(cat)].is_none() {
                missing.push(format!("`{cat}.inside_window`"));
            }
            if self.outside[category_index(cat)].is_none() {
                missing.push(format!("`{cat}.outside_window`"));
            }
        }
        if self.send_rate.is_none() {
            missing.push("`send_rate.per_page`".to_owned());
        }
        if !self.token_uses.is_empty() {
            if self.token_regions.is_none() {
                missing.push(
                    "`marketing.token_regions`, which marketing_token routes need".to_owned(),
                );
            }
            if self.token_cooldown.is_none() {
                missing.push(
                    "`marketing.token_cooldown`, which marketing_token routes need".to_owned(),
                );
            }
        }
        missing
    }

    /// Checks of rules against each other: a route must stop using a tag by the day Messenger
    /// retires it; HUMAN_AGENT's window reaches further than the standard one.
    fn check_across(&self, dir: &str, errors: &mut Vec<PolicyError>) {
        for u in &self.tag_uses {
            let Some(r) = self.retirements.iter().find(|r| r.tag == u.tag) else {
                continue;
            };
            if u.until.is_none_or(|until| until > r.on) {
                errors.push(PolicyError {
                    file: u.display.clone(),
                    line: u.line,
                    column: None,
                    message: format!(
                        "`{}` sends {} {}, but Messenger retires that tag on {} ({}); end this entry by then",
                        u.path,
                        u.tag.as_str(),
                        match u.until {
                            Some(until) => format!("until {}", fmt_moment(until)),
                            None => "with no end date".to_owned(),
                        },
                        fmt_moment(r.on),
                        r.meta.id,
                    ),
                });
            }
        }
        if let (Some(s), Some(h)) = (&self.standard, &self.human_agent) {
            if h.length < s.length {
                let (file, line) = self
                    .human_agent_loc
                    .as_ref()
                    .map_or((dir.to_owned(), None), |l| (l.display.clone(), l.line));
                errors.push(PolicyError {
                    file,
                    line,
                    column: None,
                    message: format!(
                        "`window.human_agent` ({}) is shorter than the standard window ({}); HUMAN_AGENT exists to reach further",
                        fmt_duration(h.length),
                        fmt_duration(s.length)
                    ),
                });
            }
        }
    }

    /// The set, once every rule is defined and sound (`None` if one is still missing).
    fn into_set(self, version: String, files: Vec<String>) -> Option<PolicySet> {
        let roles: [RoleRule; 4] = self
            .roles
            .into_iter()
            .collect::<Option<Vec<_>>>()?
            .try_into()
            .ok()?;
        let consent: [ConsentRule; 7] = self
            .consent
            .into_iter()
            .collect::<Option<Vec<_>>>()?
            .try_into()
            .ok()?;
        let mut routes = Vec::with_capacity(7);
        for (inside, outside) in self.inside.into_iter().zip(self.outside) {
            let ((inside_meta, inside), (outside_meta, outside)) = (inside?, outside?);
            routes.push(Routes {
                inside_meta,
                inside,
                outside_meta,
                outside,
            });
        }
        let routes: [Routes; 7] = routes.try_into().ok()?;
        let token = match (self.token_regions, self.token_cooldown) {
            (Some((regions_meta, regions)), Some((cooldown_meta, cooldown))) => Some(TokenRules {
                regions_meta,
                regions,
                cooldown_meta,
                cooldown,
            }),
            _ => None,
        };
        let mut opt_outs = self.opt_outs;
        opt_outs.sort_by_key(|o| OptOutKind::ALL.iter().position(|(k, _)| *k == o.kind));
        let mut retirements = self.retirements;
        retirements.sort_by_key(|r| r.on);
        Some(PolicySet {
            version,
            files,
            description: (!self.descriptions.is_empty()).then(|| self.descriptions.join("\n")),
            roles,
            consent,
            opt_outs,
            windows: Windows {
                standard: self.standard?,
                user_ref: self.user_ref?,
                human_agent: self.human_agent?,
            },
            routes,
            token,
            frequency: self.frequency,
            quiet_hours: self.quiet_hours,
            send_rate: self.send_rate?,
            fallback: self.fallback,
            tag_retirements: retirements,
            stop_keywords: self.stop,
            resume_keywords: self.resume,
        })
    }
}
