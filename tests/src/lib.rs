//! Workspace integration tests for meterflow.
//!
//! [`conformance`] holds one contract suite per port. Each adapter's test file instantiates it
//! with [`conformance_suite!`], so the in-memory, SQLite and DynamoDB adapters are held to the
//! very same cases. The files under `tests/` are the instantiations and the end-to-end tests.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod conformance;
pub mod fixtures;
pub mod moto;

/// Expands into one `#[tokio::test]` per conformance case. `$make` is an async fn returning a
/// fresh, isolated `meter_core::Ports`; an optional `skip` expression (evaluated first) lets a
/// backend that is not available say so and return.
#[macro_export]
macro_rules! conformance_suite {
    ($make:path) => {
        $crate::conformance_suite!($make, skip = false);
    };
    ($make:path, skip = $skip:expr) => {
        $crate::conformance_suite!(@cases $make, $skip,
            readings_come_back_in_time_order_with_every_field,
            a_second_reading_at_the_same_time_is_a_duplicate_and_changes_nothing,
            a_reused_seq_at_another_time_is_a_duplicate_seq,
            the_first_of_two_equal_readings_in_one_call_wins,
            before_and_after_are_strict_and_stay_within_the_meter,
            range_with_previous_adds_the_last_reading_at_or_before_the_start,
            range_spans_more_than_one_page,
            the_registry_round_trips_and_lists_consumers_by_feeder,
            listing_the_registry_page_by_page_yields_every_meter_once,
            register_if_absent_keeps_the_existing_record,
            a_consumer_naming_an_unregistered_feeder_is_refused,
            quarantine_is_idempotent_and_lists_newest_first,
            versions_only_increase_and_a_lower_version_never_overwrites,
            aggregate_ranges_stay_within_granularity_and_meter,
            a_roll_up_sums_exactly_the_children_in_range,
            events_are_recorded_once_and_listed_by_time,
            redelivery_and_out_of_order_replay_leave_every_aggregate_unchanged,
            a_retry_after_a_crash_half_way_converges_on_the_same_state,
            gaps_are_estimated_and_resets_bill_nothing,
            unknown_meters_are_quarantined_when_the_registry_is_enforced,
        );
    };
    (@cases $make:path, $skip:expr, $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if $skip {
                    return;
                }
                let ports = $make().await;
                $crate::conformance::$case(ports).await;
            }
        )+
    };
}

/// Expands into one `#[tokio::test]` per [`meter_core::ports::ForecastStore`] case. `$make` is
/// an async fn returning a fresh, isolated `Arc<dyn ForecastStore>`; `skip` as above.
#[macro_export]
macro_rules! forecast_store_suite {
    ($make:path) => {
        $crate::forecast_store_suite!($make, skip = false);
    };
    ($make:path, skip = $skip:expr) => {
        $crate::forecast_store_suite!(@cases $make, $skip,
            a_stored_forecast_comes_back_whole_by_meter_and_issue_time,
            rewriting_a_forecast_for_the_same_issue_replaces_it,
            latest_is_the_most_recent_issue_of_that_meter_only,
        );
    };
    (@cases $make:path, $skip:expr, $($case:ident),+ $(,)?) => {
        $crate::conformance_suite!(@cases $make, $skip, $($case),+);
    };
}

/// Expands into one `#[tokio::test]` per [`meter_core::ports::FindingStore`] case. `$make` is
/// an async fn returning a fresh, isolated `Arc<dyn FindingStore>`; `skip` as above.
#[macro_export]
macro_rules! finding_store_suite {
    ($make:path) => {
        $crate::finding_store_suite!($make, skip = false);
    };
    ($make:path, skip = $skip:expr) => {
        $crate::conformance_suite!(@cases $make, $skip,
            a_stored_finding_comes_back_whole_by_meter_and_id,
            rewriting_a_finding_replaces_it_and_a_closed_one_leaves_the_open_lists,
            open_findings_of_a_meter_stay_within_that_meter,
            the_fleets_open_findings_page_in_meter_and_id_order_each_once,
            consecutive_scans_of_one_condition_leave_one_finding_in_the_store,
        );
    };
}

/// Expands into one `#[tokio::test]` per [`meter_core::ports::PendingAggregates`] case. `$make`
/// is an async fn returning a fresh, isolated `Arc<dyn PendingAggregates>`.
#[macro_export]
macro_rules! pending_aggregates_suite {
    ($make:path) => {
        $crate::conformance_suite!(@cases $make, false,
            marks_of_one_meter_merge_into_the_range_covering_both,
            pending_marks_page_in_meter_order_and_cleared_ones_are_gone,
        );
    };
}
