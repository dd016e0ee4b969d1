//! Load-model constants calibrated against real smart-meter data, embedded so the simulator never
//! needs the data at run time.
//!
//! Source: `shared/data/sgsc50_halfhourly.csv.gz`, half-hourly `general_supply_kwh` of 50
//! households in New South Wales (Ausgrid's Smart Grid Smart City trial, 2011-12 .. 2014-03, AEST).
//! Of these, 49 have at least 30 complete days (26,306 complete days in all); 158 duplicated
//! (customer, time) readings were dropped, the first one kept. `tests/calibration.rs` recomputes
//! every number here from the file and fails if one drifts; its ignored test
//! `print_calibration_table` printed this table.
//!
//! How each was computed (all on complete days, each reading attributed to the half hour it
//! closes):
//! - the household's mean daily kWh `m_c`; its logarithm across households gives the lognormal;
//! - monthly factors: a household's mean daily kWh in a month over `m_c`, averaged over households
//!   with at least 10 complete days in that month, scaled to average 1;
//! - shapes: each reading over `m_c / 48 × month factor`, averaged per slot over weekdays and over
//!   weekends (so a shape also carries its day type's level: weekends use about 11% more);
//! - day factor: a day's total over its expected total; its log's spread is the scaled median
//!   absolute deviation, robust to the few near-empty (vacant) days;
//! - residual `r` of a reading over its expected value given its day's total: readings with
//!   `r > SPIKE_THRESHOLD` count as appliance spikes (their rate and mean `r`), the rest give the
//!   noise's mean and coefficient of variation.

/// Households that entered the calibration.
pub const CUSTOMERS: usize = 49;

/// Half-hour slots of weekday load (slot 0 is 00:00–00:30 local), relative to the household's
/// mean half hour.
pub const SHAPE_WEEKDAY: [f64; 48] = [
    0.8075, 0.7197, 0.6598, 0.6043, 0.5704, 0.5534, 0.5312, 0.5245, //
    0.5139, 0.5323, 0.5624, 0.6492, 0.8218, 0.9059, 1.0506, 1.1650, //
    1.1509, 1.1781, 1.1250, 1.0849, 1.0605, 1.0525, 1.0196, 0.9980, //
    1.0018, 0.9985, 1.0076, 0.9982, 0.9605, 0.9563, 0.9441, 0.9783, //
    1.0359, 1.0754, 1.1549, 1.2152, 1.3054, 1.3702, 1.3987, 1.3647, //
    1.3366, 1.2826, 1.2471, 1.2130, 1.1511, 1.0786, 0.9805, 0.9091, //
];

/// Half-hour slots of weekend (Saturday, Sunday) load, on the same scale as [`SHAPE_WEEKDAY`].
pub const SHAPE_WEEKEND: [f64; 48] = [
    0.8443, 0.7879, 0.7173, 0.6618, 0.6205, 0.5857, 0.5728, 0.5606, //
    0.5579, 0.5459, 0.5854, 0.6135, 0.7276, 0.8346, 0.9561, 1.1102, //
    1.1323, 1.2409, 1.3435, 1.3509, 1.3543, 1.3468, 1.2994, 1.2439, //
    1.2710, 1.2135, 1.1872, 1.1967, 1.1515, 1.1740, 1.2122, 1.2565, //
    1.2448, 1.2568, 1.3319, 1.3325, 1.4192, 1.4631, 1.4906, 1.4447, //
    1.3576, 1.3074, 1.2452, 1.1979, 1.1525, 1.0926, 0.9989, 0.9186, //
];

/// Monthly factors, January to December, southern hemisphere (winter peak in June–July, from
/// heating). Northern-hemisphere time zones use them shifted by six months.
pub const MONTH_FACTOR: [f64; 12] = [
    0.8609, 0.9143, 0.9491, 1.0308, 1.0498, 1.2199, 1.2389, 1.1253, 0.9440, 0.8999, 0.9057, 0.8613,
];

/// Mean of ln(household mean daily kWh): a median household uses e^2.32 ≈ 10.2 kWh a day.
pub const HOUSEHOLD_DAILY_KWH_LN_MU: f64 = 2.3221;

/// Standard deviation of ln(household mean daily kWh) across households.
pub const HOUSEHOLD_DAILY_KWH_LN_SIGMA: f64 = 0.5643;

/// Spread of ln(day total / expected day total): day-to-day variation (weather, occupancy).
pub const DAY_FACTOR_LN_SIGMA: f64 = 0.4059;

/// Residual above which a half hour counts as an appliance spike.
pub const SPIKE_THRESHOLD: f64 = 3.0;

/// Mean residual of non-spike half hours (below 1, since spikes carry the rest of the day).
pub const NOISE_MEAN: f64 = 0.7069;

/// Coefficient of variation of the residual of non-spike half hours.
pub const NOISE_CV: f64 = 0.8593;

/// Share of half hours that are spikes.
pub const SPIKE_RATE: f64 = 0.0661;

/// Mean residual of spike half hours.
pub const SPIKE_MEAN_RATIO: f64 = 5.2701;

// Small businesses: the trial holds households only, so these are assumptions, not calibration.

/// Median daily kWh of a small business (shop, office, workshop): an assumption.
pub const BUSINESS_DAILY_KWH_MEDIAN: f64 = 45.0;

/// Spread of ln(business mean daily kWh): an assumption.
pub const BUSINESS_DAILY_KWH_LN_SIGMA: f64 = 0.5;

/// Spread of a business's day factor: steadier than a household's; an assumption.
pub const BUSINESS_DAY_FACTOR_LN_SIGMA: f64 = 0.15;

/// Coefficient of variation of a business's half-hour noise: an assumption.
pub const BUSINESS_NOISE_CV: f64 = 0.25;
