//! The indexer conformance suite: every case runs on SQLite, PostgreSQL and MariaDB/MySQL,
//! one test per (backend, case), each in its own fresh database.
//!
//! PostgreSQL and MySQL come from `GNOCCHID_TEST_POSTGRESQL_URL` (default
//! `postgresql://postgres@127.0.0.1:5432/postgres`) and `GNOCCHID_TEST_MYSQL_URL`
//! (default `mysql://root@127.0.0.1:3306/mysql`). A backend that cannot be reached fails
//! its tests with a message naming the variable; nothing is skipped.

mod cases;
mod support;

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::support::run(crate::support::Backend::Sqlite, crate::cases::$case).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::support::run(crate::support::Backend::Postgres, crate::cases::$case).await
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    crate::support::run(crate::support::Backend::Mysql, crate::cases::$case).await
                }
            )*
        }
    };
}

suite!(
    upgrade_is_idempotent_and_creates_defaults,
    upgrade_without_defaults,
    concurrent_upgrades_serialise,
    sack_count_is_stored_once,
    archive_policy_crud,
    archive_policy_in_use,
    archive_policy_rules,
    metric_crud,
    metric_list_filters_and_pagination,
    metric_filters_match_ids_literally,
    search_like_is_a_pattern,
    resource_type_crud,
    resource_type_update_with_fill,
    typed_attribute_validation,
    resource_create_and_get,
    resource_non_uuid_ids,
    resource_patch_and_history,
    resource_patch_metrics,
    resource_delete,
    resource_batch_delete,
    resource_batch_create,
    resource_batch_create_round_trips_values,
    search_every_operator,
    search_string_and_json_forms_agree,
    search_lifespan,
    search_history,
    search_sort_and_marker_pagination,
    search_history_pagination,
    search_errors,
    search_details_on_generic,
);
