-- ulasan's initial schema: reviews, features, predictions, feedback, metrics, drift, retraining.
--
-- Every write is idempotent: rows are keyed by the id of the event that produced them, so an
-- event delivered twice (at-least-once) updates or skips, never duplicates. There are no
-- foreign keys between the event tables on purpose: agents write them independently and in
-- any order (a feature row may land before its review row).

CREATE TABLE reviews (
    review_id   text PRIMARY KEY,
    source      text NOT NULL,
    app_id      text,
    text        text NOT NULL,
    rating      smallint CHECK (rating BETWEEN 1 AND 5),
    review_time timestamptz,
    ingested_at timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reviews_source_app_idx ON reviews (source, app_id);
CREATE INDEX reviews_ingested_at_idx ON reviews (ingested_at);

CREATE TABLE text_features (
    review_id                text PRIMARY KEY,
    cleaned_text             text NOT NULL,
    word_count               integer NOT NULL CHECK (word_count >= 0),
    char_count               integer NOT NULL CHECK (char_count >= 0),
    avg_word_length          real NOT NULL CHECK (avg_word_length >= 0),
    sentiment_words_positive integer NOT NULL CHECK (sentiment_words_positive >= 0),
    sentiment_words_negative integer NOT NULL CHECK (sentiment_words_negative >= 0),
    exclamation_marks        integer NOT NULL CHECK (exclamation_marks >= 0),
    question_marks           integer NOT NULL CHECK (question_marks >= 0),
    uppercase_ratio          real NOT NULL CHECK (uppercase_ratio BETWEEN 0 AND 1),
    special_chars_count      integer NOT NULL CHECK (special_chars_count >= 0),
    number_count             integer NOT NULL CHECK (number_count >= 0),
    has_url                  boolean NOT NULL,
    has_emoji                boolean NOT NULL,
    feature_version          text NOT NULL,
    created_at               timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE prediction_logs (
    event_id           text PRIMARY KEY,
    review_id          text,
    request_id         text,
    input              text NOT NULL,
    label              text NOT NULL CHECK (label IN ('negative', 'neutral', 'positive')),
    confidence         real NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    probabilities      jsonb NOT NULL,
    actual_label       text CHECK (actual_label IN ('negative', 'neutral', 'positive')),
    model_name         text NOT NULL,
    model_version      text NOT NULL,
    shadow             boolean NOT NULL DEFAULT false,
    "timestamp"        timestamptz NOT NULL,
    processing_time_ms real CHECK (processing_time_ms >= 0),
    -- a prediction scores either a review (sentiment.v1) or a request (predict.replies.v1)
    CONSTRAINT prediction_logs_one_subject CHECK (num_nonnulls(review_id, request_id) = 1)
);
CREATE INDEX prediction_logs_review_id_idx ON prediction_logs (review_id);
CREATE INDEX prediction_logs_timestamp_idx ON prediction_logs ("timestamp");
-- one prediction per review, model version and role (champion or shadow): re-scoring a review
-- after a replay overwrites instead of adding a row
CREATE UNIQUE INDEX prediction_logs_review_model_uq
    ON prediction_logs (review_id, model_version, shadow)
    WHERE review_id IS NOT NULL;

CREATE TABLE feedback (
    feedback_id text PRIMARY KEY,
    review_id   text NOT NULL,
    label       text NOT NULL CHECK (label IN ('negative', 'neutral', 'positive')),
    source      text NOT NULL CHECK (source IN ('rating', 'human')),
    "time"      timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feedback_review_id_idx ON feedback (review_id);

CREATE TABLE model_metrics (
    id            bigserial PRIMARY KEY,
    model_name    text NOT NULL,
    model_version text NOT NULL,
    split         text NOT NULL,
    metric        text NOT NULL,
    value         double precision NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT model_metrics_key UNIQUE (model_name, model_version, split, metric)
);

CREATE TABLE drift_reports (
    report_id     text PRIMARY KEY,
    window_start  timestamptz NOT NULL,
    window_end    timestamptz NOT NULL,
    n_events      integer NOT NULL CHECK (n_events >= 0),
    model_version text NOT NULL,
    drift_score   double precision NOT NULL CHECK (drift_score BETWEEN 0 AND 1),
    drifted       boolean NOT NULL,
    signals       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT drift_reports_window CHECK (window_end >= window_start)
);
CREATE INDEX drift_reports_window_end_idx ON drift_reports (window_end);

CREATE TABLE retrain_runs (
    run_id           text PRIMARY KEY,
    request_id       text NOT NULL,
    dedupe_key       text NOT NULL UNIQUE,
    reasons          text[] NOT NULL,
    status           text NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    duration_s       double precision CHECK (duration_s >= 0),
    data_sizes       jsonb,
    scores           jsonb,
    decision         text,
    promoted_version text,
    error            text
);

CREATE TABLE producer_checkpoints (
    producer   text NOT NULL,
    key        text NOT NULL,
    value      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (producer, key)
);
