-- 0004: TOTP multi-factor authentication.
--
-- Portable. Times are UTC nanoseconds like the other tables.

-- One enrollment per user. secret is the TOTP seed sealed by the vault
-- (AES-256-GCM under the master key, bound to "mfa:USER"): a copy of the
-- database alone yields no seed. state is 'pending' until a first valid
-- code confirms it, then 'active'; activated_at is NULL while pending.
CREATE TABLE mfa_enrollments (
    user_name    TEXT      NOT NULL PRIMARY KEY,
    secret       {{bytes}} NOT NULL,
    state        TEXT      NOT NULL,
    created_at   BIGINT    NOT NULL,
    activated_at BIGINT
);

-- One-time recovery codes, as hex SHA-256 of the normalized code (ten
-- random base32 characters: 50 bits, beyond guessing under the rate
-- limits, so a plain hash suffices). used_at is NULL until used; the
-- UPDATE that sets it is the one-time check.
CREATE TABLE mfa_recovery_codes (
    user_name TEXT   NOT NULL,
    code_hash TEXT   NOT NULL,
    used_at   BIGINT,
    PRIMARY KEY (user_name, code_hash)
);

-- TOTP time steps already accepted, per user. The primary key makes the
-- INSERT the replay check: a code is accepted once even when two gateways
-- see it at the same moment.
CREATE TABLE mfa_used_steps (
    user_name TEXT   NOT NULL,
    step      BIGINT NOT NULL,
    used_at   BIGINT NOT NULL,
    PRIMARY KEY (user_name, step)
);
