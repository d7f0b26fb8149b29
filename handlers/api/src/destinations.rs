//! Whom the account calls: the countries a contact's number may ring in.
//!
//! Every number a campaign would dial is checked twice. [`phone::dialable`] refuses what is
//! never called whatever the account allows (premium-rate and shared-cost numbers, and
//! country codes that name no country: international networks, satellite and global
//! services). Then the number's country must be on the account's allow-list,
//! `OUTDIAL_ALLOWED_COUNTRIES` (ISO 3166 alpha-2 codes, comma-separated). Without the
//! variable, a request may call the campaign's `default_region` and the region the request
//! itself names for its numbers (an append's or a single call's `default_region`): calling
//! abroad is then something a request asks for in so many words, never what a stray `+`
//! does. With it, the list is the whole answer, and no request can widen it.
//!
//! The do-not-call list takes any number that could be a destination one day: refusing one
//! outside today's list would leave it callable once the list grows.

use std::fmt;
use std::str::FromStr;

use outdial_adapters::config::number;
use outdial_core::ids::E164;

use crate::phone::{self, NumberError, Region};

/// The variable that holds the account's allow-list.
pub const ALLOWED_COUNTRIES: &str = "OUTDIAL_ALLOWED_COUNTRIES";

/// The account's allow-list of countries, as the API function's environment sets it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AllowedCountries {
    /// Not set: each request may call its campaign's region and the region it names.
    #[default]
    CampaignRegion,
    /// These countries and no others, whatever a request says.
    Only(Vec<Region>),
}

impl FromStr for AllowedCountries {
    type Err = String;

    /// `US,CA,GB` (case and spaces are ignored); empty means not set.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        if raw.trim().is_empty() {
            return Ok(Self::CampaignRegion);
        }
        let mut countries: Vec<Region> = Vec::new();
        for code in raw.split(',') {
            let region = Region::parse(code)?;
            if !countries.contains(&region) {
                countries.push(region);
            }
        }
        Ok(Self::Only(countries))
    }
}

impl fmt::Display for AllowedCountries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CampaignRegion => f.write_str("the campaign's region"),
            Self::Only(countries) => f.write_str(&list(countries)),
        }
    }
}

fn list(countries: &[Region]) -> String {
    countries
        .iter()
        .map(Region::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl AllowedCountries {
    /// Reads [`ALLOWED_COUNTRIES`] from the environment.
    ///
    /// # Errors
    /// When it names a code that is not an ISO 3166 country with a numbering plan.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`AllowedCountries::from_env`], reading through `lookup`.
    ///
    /// # Errors
    /// As [`AllowedCountries::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        number(
            &lookup,
            ALLOWED_COUNTRIES,
            Self::CampaignRegion,
            "ISO 3166 alpha-2 country codes with a numbering plan, comma-separated (such as \
             \"US,CA\"), or empty for each campaign's own region",
            |_| true,
        )
    }

    /// What a request for a campaign in `campaign` may call, reading its national numbers in
    /// `request` (the campaign's region unless the request names another).
    #[must_use]
    pub fn for_request(&self, campaign: Region, request: Region) -> Destinations {
        let countries = match self {
            Self::CampaignRegion if campaign == request => vec![campaign],
            Self::CampaignRegion => vec![campaign, request],
            Self::Only(countries) => countries.clone(),
        };
        Destinations { countries }
    }
}

/// The countries one request may call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destinations {
    countries: Vec<Region>,
}

impl Destinations {
    /// Whether `number` may be called.
    ///
    /// # Errors
    /// Why not: a kind of number that is never called, or a country not allowed.
    pub fn admit(&self, number: &E164) -> Result<(), NumberError> {
        let country = phone::dialable(number)?;
        if self.countries.contains(&country) {
            Ok(())
        } else {
            Err(NumberError::NotAllowed {
                country: country.as_str().to_owned(),
                allowed: list(&self.countries),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(value: Option<&str>) -> anyhow::Result<AllowedCountries> {
        let map: HashMap<&str, &str> = value
            .map(|v| HashMap::from([(ALLOWED_COUNTRIES, v)]))
            .unwrap_or_default();
        AllowedCountries::from_lookup(|k| map.get(k).map(|v| (*v).to_owned()))
    }

    fn region(code: &str) -> Region {
        Region::parse(code).unwrap()
    }

    fn e164(raw: &str) -> E164 {
        E164::parse(raw).unwrap()
    }

    #[test]
    fn the_allow_list_is_read_from_the_environment_and_defaults_to_the_campaign_region() {
        assert_eq!(read(None).unwrap(), AllowedCountries::CampaignRegion);
        assert_eq!(read(Some(" ")).unwrap(), AllowedCountries::CampaignRegion);
        assert_eq!(
            read(Some("us, ca,US")).unwrap(),
            AllowedCountries::Only(vec![region("US"), region("CA")])
        );
        for bad in ["US,XX", "US,,CA", "USA"] {
            let err = read(Some(bad)).unwrap_err().to_string();
            assert!(err.contains(ALLOWED_COUNTRIES), "{bad}: {err}");
        }
    }

    #[test]
    fn by_default_a_request_calls_its_campaign_region_and_the_region_it_names() {
        let us = AllowedCountries::CampaignRegion.for_request(region("US"), region("US"));
        assert_eq!(us.admit(&e164("+12025550100")), Ok(()));
        assert_eq!(us.admit(&e164("+15555550100")), Ok(()));
        assert!(matches!(
            us.admit(&e164("+442071838750")),
            Err(NumberError::NotAllowed { country, .. }) if country == "GB"
        ));
        // Canada shares +1 and is another country.
        assert!(matches!(
            us.admit(&e164("+14165550100")),
            Err(NumberError::NotAllowed { country, .. }) if country == "CA"
        ));
        let named = AllowedCountries::CampaignRegion.for_request(region("US"), region("GB"));
        assert_eq!(named.admit(&e164("+442071838750")), Ok(()));
        assert_eq!(named.admit(&e164("+12025550100")), Ok(()));
    }

    #[test]
    fn an_account_list_is_the_whole_answer() {
        let only =
            AllowedCountries::Only(vec![region("CA")]).for_request(region("US"), region("GB"));
        assert_eq!(only.admit(&e164("+14165550100")), Ok(()));
        for refused in ["+12025550100", "+442071838750"] {
            assert!(
                matches!(
                    only.admit(&e164(refused)),
                    Err(NumberError::NotAllowed { .. })
                ),
                "{refused}"
            );
        }
    }

    #[test]
    fn premium_shared_cost_and_non_geographic_numbers_are_refused_whatever_the_list() {
        let all = AllowedCountries::Only(vec![region("US"), region("GB"), region("FR")])
            .for_request(region("US"), region("US"));
        assert_eq!(
            all.admit(&e164("+19005550100")),
            Err(NumberError::PremiumRate)
        );
        assert_eq!(
            all.admit(&e164("+449098790000")),
            Err(NumberError::PremiumRate)
        );
        assert_eq!(
            all.admit(&e164("+33810123456")),
            Err(NumberError::SharedCost)
        );
        for (number, code) in [
            ("+979123456789", 979),
            ("+882345678901", 882),
            ("+88312345678", 883),
            ("+881612345678", 881),
            ("+870773111632", 870),
            ("+80012345678", 800),
            ("+80812345678", 808),
        ] {
            assert_eq!(
                all.admit(&e164(number)),
                Err(NumberError::NonGeographic(code)),
                "{number}"
            );
        }
    }
}
