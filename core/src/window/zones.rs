//! Which time zone a phone number settles, when it settles one.
//!
//! A wrong zone means calling someone at night, so a number is given a zone only when every
//! subscriber reachable under its prefix keeps that zone's civil time (the same offsets and
//! the same daylight-saving rules, now and as far as the tz database knows). A prefix that
//! spans two zones is left out, however lopsided the split, and its numbers get the
//! campaign's default zone. Where a country or area code is in one zone but the tz database
//! names a more local zone with identical rules (Indiana, Michigan, Moncton), the more local
//! name is used; both give the same instants.
//!
//! The tables hold only what a number's own digits say: where the subscriber happens to be
//! (a roaming mobile, a ported number) is unknowable here, which is why an explicit zone on a
//! contact always wins.
//!
//! How the tables were made: each country code's, and each North American area code's,
//! region (ITU and NANPA assignments) set against the zone boundaries the tz database
//! records, then cross-checked with Google libphonenumber's
//! `resources/timezones/map_data.txt`, which lists every area code assigned when it was
//! taken (2026). That file is a cross-check, not the source: it claims a single zone for
//! codes that straddle a boundary (850, 334, 432, 306 and others listed at [`NANP`]), which
//! are left out here, and it puts Orlando's 689 in Central time, which is wrong.

/// Country calling codes, and prefixes within them, by the zone their numbers keep. Digits
/// follow the `+`; the longest matching prefix wins, and `None` marks a prefix that does not
/// settle the zone inside a country that is otherwise listed.
///
/// Left out entirely, because a country code spans several zones' civil time: +1 (looked up
/// by area code instead, see [`NANP`]), +7 (Russia, Kazakhstan), +52 Mexico, +55 Brazil,
/// +56 Chile (Easter Island, Magallanes), +61 Australia (besides its zones, Tweed Heads
/// shares Queensland's 07 but keeps New South Wales' daylight saving), +62 Indonesia, +86
/// China (Xinjiang keeps Urumqi time alongside Beijing's), +262 (Réunion and Mayotte differ),
/// +380 Ukraine (occupied areas keep Moscow time), +593 Ecuador (Galápagos), +972 Israel (the
/// West Bank's zones change on other dates). Countries not named anywhere here are simply not
/// listed yet; their numbers get the default too.
///
/// Countries with a small offshore zone are listed by fixed-line area code only; their
/// mobile numbers are used nationwide and so fall to the campaign's default:
/// - +34 Spain: geographic numbers are `8[1-8]x` and `9[1-8]x`; 822/922 (Santa Cruz de
///   Tenerife) and 828/928 (Las Palmas) are the Canary Islands, an hour behind the
///   mainland. 827 is left out (libphonenumber files it under the Canaries; unconfirmed).
///   Ceuta and Melilla share the mainland's rules.
/// - +351 Portugal: geographic numbers start with 2; 292, 295 and 296 are the Azores, an
///   hour behind; 291 is Madeira, on Lisbon's rules.
/// - +64 New Zealand: 4, 6, 7 and 9 are the North Island. 3 (the South Island) also holds
///   the Chatham Islands, 45 minutes ahead, so it is left out.
/// - +90 Turkey: 2xx, 3xx and 4xx are geographic; 392 is Northern Cyprus, on EU rules while
///   Turkey keeps +03 all year. Mobiles (5xx) serve both.
pub(super) const COUNTRIES: &[(&str, Option<&str>)] = &[
    ("20", Some("Africa/Cairo")),
    ("27", Some("Africa/Johannesburg")),
    ("30", Some("Europe/Athens")),
    // The Caribbean Netherlands have +599.
    ("31", Some("Europe/Amsterdam")),
    ("32", Some("Europe/Brussels")),
    // Overseas departments and territories have their own country codes.
    ("33", Some("Europe/Paris")),
    ("3481", Some("Europe/Madrid")),
    ("3482", Some("Europe/Madrid")),
    ("34822", Some("Atlantic/Canary")),
    ("34827", None),
    ("34828", Some("Atlantic/Canary")),
    ("3483", Some("Europe/Madrid")),
    ("3484", Some("Europe/Madrid")),
    ("3485", Some("Europe/Madrid")),
    ("3486", Some("Europe/Madrid")),
    ("3487", Some("Europe/Madrid")),
    ("3488", Some("Europe/Madrid")),
    ("3491", Some("Europe/Madrid")),
    ("3492", Some("Europe/Madrid")),
    ("34922", Some("Atlantic/Canary")),
    ("34928", Some("Atlantic/Canary")),
    ("3493", Some("Europe/Madrid")),
    ("3494", Some("Europe/Madrid")),
    ("3495", Some("Europe/Madrid")),
    ("3496", Some("Europe/Madrid")),
    ("3497", Some("Europe/Madrid")),
    ("3498", Some("Europe/Madrid")),
    ("36", Some("Europe/Budapest")),
    // Includes the Vatican's +39 06 698.
    ("39", Some("Europe/Rome")),
    ("40", Some("Europe/Bucharest")),
    ("41", Some("Europe/Zurich")),
    ("43", Some("Europe/Vienna")),
    // Includes Guernsey, Jersey and the Isle of Man, whose zones follow London's rules.
    ("44", Some("Europe/London")),
    // The Faroe Islands (+298) and Greenland (+299) have their own codes.
    ("45", Some("Europe/Copenhagen")),
    ("46", Some("Europe/Stockholm")),
    // Includes Svalbard, on the mainland's rules.
    ("47", Some("Europe/Oslo")),
    ("48", Some("Europe/Warsaw")),
    ("49", Some("Europe/Berlin")),
    ("51", Some("America/Lima")),
    ("53", Some("America/Havana")),
    // Every province keeps -03 without daylight saving; the tz database's per-province
    // zones differ only in history.
    ("54", Some("America/Argentina/Buenos_Aires")),
    ("57", Some("America/Bogota")),
    ("58", Some("America/Caracas")),
    // Peninsular Malaysia, Sabah and Sarawak all keep +08.
    ("60", Some("Asia/Kuala_Lumpur")),
    ("63", Some("Asia/Manila")),
    ("644", Some("Pacific/Auckland")),
    ("646", Some("Pacific/Auckland")),
    ("647", Some("Pacific/Auckland")),
    ("649", Some("Pacific/Auckland")),
    ("65", Some("Asia/Singapore")),
    ("66", Some("Asia/Bangkok")),
    ("81", Some("Asia/Tokyo")),
    ("82", Some("Asia/Seoul")),
    ("84", Some("Asia/Ho_Chi_Minh")),
    ("902", Some("Europe/Istanbul")),
    ("903", Some("Europe/Istanbul")),
    ("90392", Some("Asia/Famagusta")),
    ("904", Some("Europe/Istanbul")),
    ("91", Some("Asia/Kolkata")),
    ("92", Some("Asia/Karachi")),
    ("94", Some("Asia/Colombo")),
    ("233", Some("Africa/Accra")),
    ("234", Some("Africa/Lagos")),
    ("254", Some("Africa/Nairobi")),
    ("350", Some("Europe/Gibraltar")),
    ("3512", Some("Europe/Lisbon")),
    ("351291", Some("Atlantic/Madeira")),
    ("351292", Some("Atlantic/Azores")),
    ("351295", Some("Atlantic/Azores")),
    ("351296", Some("Atlantic/Azores")),
    ("352", Some("Europe/Luxembourg")),
    // Northern Ireland is +44.
    ("353", Some("Europe/Dublin")),
    ("354", Some("Atlantic/Reykjavik")),
    ("355", Some("Europe/Tirane")),
    ("356", Some("Europe/Malta")),
    // The Republic of Cyprus; Northern Cyprus is +90 392.
    ("357", Some("Asia/Nicosia")),
    // Includes Åland, on Helsinki's rules.
    ("358", Some("Europe/Helsinki")),
    ("359", Some("Europe/Sofia")),
    ("370", Some("Europe/Vilnius")),
    ("371", Some("Europe/Riga")),
    ("372", Some("Europe/Tallinn")),
    ("376", Some("Europe/Andorra")),
    ("377", Some("Europe/Monaco")),
    ("378", Some("Europe/San_Marino")),
    ("381", Some("Europe/Belgrade")),
    ("382", Some("Europe/Podgorica")),
    ("385", Some("Europe/Zagreb")),
    ("386", Some("Europe/Ljubljana")),
    ("387", Some("Europe/Sarajevo")),
    ("389", Some("Europe/Skopje")),
    ("420", Some("Europe/Prague")),
    ("421", Some("Europe/Bratislava")),
    ("423", Some("Europe/Vaduz")),
    ("502", Some("America/Guatemala")),
    ("503", Some("America/El_Salvador")),
    ("504", Some("America/Tegucigalpa")),
    ("505", Some("America/Managua")),
    ("506", Some("America/Costa_Rica")),
    ("507", Some("America/Panama")),
    ("591", Some("America/La_Paz")),
    ("595", Some("America/Asuncion")),
    ("598", Some("America/Montevideo")),
    ("852", Some("Asia/Hong_Kong")),
    ("853", Some("Asia/Macau")),
    ("880", Some("Asia/Dhaka")),
    ("886", Some("Asia/Taipei")),
    ("961", Some("Asia/Beirut")),
    ("962", Some("Asia/Amman")),
    ("965", Some("Asia/Kuwait")),
    ("966", Some("Asia/Riyadh")),
    ("968", Some("Asia/Muscat")),
    ("971", Some("Asia/Dubai")),
    ("973", Some("Asia/Bahrain")),
    ("974", Some("Asia/Qatar")),
    ("977", Some("Asia/Kathmandu")),
];

/// North American Numbering Plan area codes (the three digits after `+1`) that lie wholly in
/// one zone, by state, province or territory (named for readers and test messages).
///
/// Left out, so that their numbers get the campaign's default zone:
/// - Non-geographic codes: toll-free 800, 833, 844, 855, 866, 877, 888; 500, 52x, 533, 544,
///   566, 577, 588 (personal and machine-to-machine services); 600 and 622 (Canada); 700,
///   710, 900. None of these says where the subscriber is.
/// - Codes that straddle a zone boundary, official or widely observed:
///   - Alabama 334: Phenix City, Lanett and Valley keep Eastern time across from Georgia.
///   - Alaska 907: the Aleutians west of 169°30′W keep Hawaii-Aleutian time.
///   - Arizona 928: the Navajo Nation keeps daylight saving, the rest of Arizona does not.
///   - Florida 850 and 448: the panhandle west of the Apalachicola River is Central.
///   - Idaho 208 and 986: the panhandle is Pacific, the south Mountain.
///   - Indiana 219, 574, 812 and 930: the north-west and south-west corners are Central.
///   - Kansas 620 and 785: four western counties are Mountain.
///   - Kentucky 270, 364 and 606: the west is Central, Hardin County and the east Eastern;
///     606 reaches Central-time Clinton County.
///   - Michigan 906: four Upper Peninsula counties on the Wisconsin border are Central.
///   - Nebraska 308, North Dakota 701, South Dakota 605: the west is Mountain.
///   - Nevada 775: West Wendover and Jackpot keep Mountain time.
///   - Oregon 541 and 458: most of Malheur County is Mountain.
///   - Tennessee 423: Bledsoe, Marion and Sequatchie counties are Central.
///   - Texas 432: Culberson County is Mountain (El Paso's 915 is wholly Mountain and listed).
///   - British Columbia 250, 236, 257, 672 and 778: the Peace River region and Creston keep
///     MST all year, the East Kootenays Mountain time with daylight saving (604 is the Lower
///     Mainland only and is listed).
///   - Newfoundland and Labrador 709 and 879: most of Labrador keeps Atlantic time, the
///     island Newfoundland time.
///   - Ontario 807: the west is Central, Atikokan keeps EST all year.
///   - Quebec 418, 367 and 581: the Magdalen Islands are Atlantic and the Lower North Shore
///     keeps AST all year.
///   - Saskatchewan 306, 474 and 639: Lloydminster keeps Alberta's time and Creighton
///     Manitoba's, while the province keeps CST all year.
///   - Yukon, Northwest Territories and Nunavut 867: four zones between them.
/// - Codes assigned so recently that the assignment could not be confirmed here; they fall
///   to the default until added.
///
/// Oklahoma's 580 is listed as Central although Kenton (a few dozen people) keeps Mountain
/// time unofficially.
#[rustfmt::skip]
pub(super) const NANP: &[(&str, &str, &[&str])] = &[
    // United States, Eastern time.
    ("Connecticut", "America/New_York", &["203", "475", "860", "959"]),
    ("Delaware", "America/New_York", &["302"]),
    ("District of Columbia", "America/New_York", &["202", "771"]),
    ("Florida east of the Apalachicola River", "America/New_York", &[
        "239", "305", "321", "324", "352", "386", "407", "561", "645", "656", "689", "727", "728",
        "754", "772", "786", "813", "863", "904", "941", "954",
    ]),
    ("Georgia", "America/New_York", &[
        "229", "404", "470", "478", "678", "706", "762", "770", "912", "943",
    ]),
    ("Indiana, Eastern part", "America/Indiana/Indianapolis", &["260", "317", "463", "765"]),
    ("Kentucky, Louisville", "America/Kentucky/Louisville", &["502"]),
    ("Kentucky, Lexington", "America/New_York", &["859"]),
    ("Maine", "America/New_York", &["207"]),
    ("Maryland", "America/New_York", &["227", "240", "301", "410", "443", "667"]),
    ("Massachusetts", "America/New_York", &[
        "339", "351", "413", "508", "617", "774", "781", "857", "978",
    ]),
    ("Michigan without the Upper Peninsula's 906", "America/Detroit", &[
        "231", "248", "269", "313", "517", "586", "616", "734", "810", "947", "989",
    ]),
    ("New Hampshire", "America/New_York", &["603"]),
    ("New Jersey", "America/New_York", &[
        "201", "551", "609", "640", "732", "848", "856", "862", "908", "973",
    ]),
    ("New York", "America/New_York", &[
        "212", "315", "329", "332", "347", "363", "516", "518", "585", "607", "631", "646", "680",
        "716", "718", "838", "845", "914", "917", "929", "934",
    ]),
    ("North Carolina", "America/New_York", &[
        "252", "336", "472", "704", "743", "828", "910", "919", "980", "984",
    ]),
    ("Ohio", "America/New_York", &[
        "216", "220", "234", "283", "326", "330", "380", "419", "440", "513", "567", "614", "740",
        "937",
    ]),
    ("Pennsylvania", "America/New_York", &[
        "215", "223", "267", "272", "412", "445", "484", "570", "582", "610", "717", "724", "814",
        "835", "878",
    ]),
    ("Rhode Island", "America/New_York", &["401"]),
    ("South Carolina", "America/New_York", &["803", "821", "839", "843", "854", "864"]),
    ("Tennessee, Knoxville", "America/New_York", &["865"]),
    ("Vermont", "America/New_York", &["802"]),
    ("Virginia", "America/New_York", &[
        "276", "434", "540", "571", "686", "703", "757", "804", "826", "948",
    ]),
    ("West Virginia", "America/New_York", &["304", "681"]),
    // United States, Central time.
    ("Alabama without 334", "America/Chicago", &["205", "251", "256", "659", "938"]),
    ("Arkansas", "America/Chicago", &["327", "479", "501", "870"]),
    ("Illinois", "America/Chicago", &[
        "217", "224", "309", "312", "331", "447", "464", "618", "630", "708", "730", "773", "779",
        "815", "847", "872",
    ]),
    ("Iowa", "America/Chicago", &["319", "515", "563", "641", "712"]),
    ("Kansas, east", "America/Chicago", &["316", "913"]),
    ("Louisiana", "America/Chicago", &["225", "318", "337", "504", "985"]),
    ("Minnesota", "America/Chicago", &["218", "320", "507", "612", "651", "763", "952"]),
    ("Mississippi", "America/Chicago", &["228", "601", "662", "769"]),
    ("Missouri", "America/Chicago", &[
        "235", "314", "417", "557", "573", "636", "660", "816", "975",
    ]),
    ("Nebraska, east", "America/Chicago", &["402", "531"]),
    ("Oklahoma", "America/Chicago", &["405", "539", "572", "580", "918"]),
    ("Tennessee, Middle and West", "America/Chicago", &["615", "629", "731", "901", "931"]),
    ("Texas without 432 and 915", "America/Chicago", &[
        "210", "214", "254", "281", "325", "346", "361", "409", "430", "469", "512", "682", "713",
        "726", "737", "806", "817", "830", "832", "903", "936", "940", "945", "956", "972", "979",
    ]),
    ("Wisconsin", "America/Chicago", &["262", "274", "353", "414", "534", "608", "715", "920"]),
    // United States, Mountain time.
    ("Colorado", "America/Denver", &["303", "719", "720", "748", "970", "983"]),
    ("Montana", "America/Denver", &["406"]),
    ("New Mexico", "America/Denver", &["505", "575"]),
    ("Texas, El Paso and Hudspeth counties", "America/Denver", &["915"]),
    ("Utah", "America/Denver", &["385", "435", "801"]),
    ("Wyoming", "America/Denver", &["307"]),
    // Arizona keeps MST all year.
    ("Arizona without 928", "America/Phoenix", &["480", "520", "602", "623"]),
    // United States, Pacific time.
    ("California", "America/Los_Angeles", &[
        "209", "213", "279", "310", "323", "341", "350", "369", "408", "415", "424", "442", "510",
        "530", "559", "562", "619", "626", "628", "650", "657", "661", "669", "707", "714", "738",
        "747", "760", "805", "818", "820", "831", "840", "858", "909", "916", "925", "949", "951",
    ]),
    ("Nevada, Las Vegas", "America/Los_Angeles", &["702", "725"]),
    ("Oregon, north-west", "America/Los_Angeles", &["503", "971"]),
    ("Washington", "America/Los_Angeles", &["206", "253", "360", "425", "509", "564"]),
    // Hawaii keeps HST all year.
    ("Hawaii", "Pacific/Honolulu", &["808"]),
    // Canada.
    ("Alberta", "America/Edmonton", &["368", "403", "587", "780", "825"]),
    ("British Columbia, Lower Mainland", "America/Vancouver", &["604"]),
    ("Manitoba", "America/Winnipeg", &["204", "431", "584"]),
    ("New Brunswick", "America/Moncton", &["428", "506"]),
    ("Nova Scotia and Prince Edward Island", "America/Halifax", &["782", "902"]),
    ("Ontario without 807", "America/Toronto", &[
        "226", "249", "289", "343", "365", "382", "416", "437", "519", "548", "613", "647", "683",
        "705", "742", "753", "905", "942",
    ]),
    ("Quebec without 418, 367 and 581", "America/Toronto", &[
        "263", "354", "438", "450", "468", "514", "579", "819", "873",
    ]),
    // Caribbean and Pacific members of the plan, each in one zone.
    ("Bahamas", "America/Nassau", &["242"]),
    ("Barbados", "America/Barbados", &["246"]),
    ("Anguilla", "America/Anguilla", &["264"]),
    ("Antigua and Barbuda", "America/Antigua", &["268"]),
    ("British Virgin Islands", "America/Tortola", &["284"]),
    ("US Virgin Islands", "America/St_Thomas", &["340"]),
    ("Cayman Islands", "America/Cayman", &["345"]),
    ("Bermuda", "Atlantic/Bermuda", &["441"]),
    ("Grenada", "America/Grenada", &["473"]),
    ("Turks and Caicos", "America/Grand_Turk", &["649"]),
    ("Jamaica", "America/Jamaica", &["658", "876"]),
    ("Montserrat", "America/Montserrat", &["664"]),
    ("Northern Mariana Islands", "Pacific/Saipan", &["670"]),
    ("Guam", "Pacific/Guam", &["671"]),
    ("American Samoa", "Pacific/Pago_Pago", &["684"]),
    ("Sint Maarten", "America/Lower_Princes", &["721"]),
    ("Saint Lucia", "America/St_Lucia", &["758"]),
    ("Dominica", "America/Dominica", &["767"]),
    ("Saint Vincent and the Grenadines", "America/St_Vincent", &["784"]),
    ("Puerto Rico", "America/Puerto_Rico", &["787", "939"]),
    ("Dominican Republic", "America/Santo_Domingo", &["809", "829", "849"]),
    ("Trinidad and Tobago", "America/Port_of_Spain", &["868"]),
    ("Saint Kitts and Nevis", "America/St_Kitts", &["869"]),
];

/// The IANA name of the zone `number` settles, if it settles one.
pub(super) fn for_number(number: &crate::ids::E164) -> Option<&'static str> {
    let digits = number.as_str().strip_prefix('+').unwrap_or(number.as_str());
    if let Some(national) = digits.strip_prefix('1') {
        let area = national.get(..3)?;
        return NANP
            .iter()
            .find(|(_, _, codes)| codes.contains(&area))
            .map(|(_, zone, _)| *zone);
    }
    COUNTRIES
        .iter()
        .filter(|(prefix, _)| digits.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .and_then(|(_, zone)| *zone)
}

/// How the time-zone table names the region of a North American `number`'s area code
/// ("Florida east of the Apalachicola River", "Ontario without 807"), when it lists the code.
pub(super) fn nanp_region(number: &crate::ids::E164) -> Option<&'static str> {
    let digits = number.as_str().strip_prefix('+').unwrap_or(number.as_str());
    let area = digits.strip_prefix('1')?.get(..3)?;
    NANP.iter()
        .find(|(_, _, codes)| codes.contains(&area))
        .map(|(region, _, _)| *region)
}
