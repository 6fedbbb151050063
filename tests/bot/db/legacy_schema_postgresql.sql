-- The schema SQLModel.metadata.create_all made at commit e24ad00 (before migrations), postgresql.
-- Frozen: tests/bot/db compare the migrated schema against it.
CREATE TABLE governance_audit (
	id SERIAL NOT NULL, 
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	event VARCHAR NOT NULL, 
	subject VARCHAR NOT NULL, 
	subject_hash VARCHAR NOT NULL, 
	chain_id INTEGER NOT NULL, 
	safe VARCHAR NOT NULL, 
	actor VARCHAR NOT NULL, 
	reason VARCHAR NOT NULL, 
	detail VARCHAR NOT NULL, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_governance_audit_created_at ON governance_audit (created_at);
CREATE INDEX ix_governance_audit_event ON governance_audit (event);
CREATE INDEX ix_governance_audit_subject ON governance_audit (subject);
CREATE INDEX ix_governance_audit_subject_hash ON governance_audit (subject_hash);
CREATE TABLE governance_override (
	id SERIAL NOT NULL, 
	override_hash VARCHAR NOT NULL, 
	chain_id INTEGER NOT NULL, 
	safe VARCHAR NOT NULL, 
	nonce INTEGER NOT NULL, 
	kind VARCHAR NOT NULL, 
	params VARCHAR NOT NULL, 
	reason VARCHAR NOT NULL, 
	expiry INTEGER NOT NULL, 
	signers VARCHAR NOT NULL, 
	applied_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_override_nonce UNIQUE (chain_id, safe, nonce), 
	UNIQUE (override_hash)
);
CREATE TABLE governance_policy_approval (
	id SERIAL NOT NULL, 
	policy_hash VARCHAR NOT NULL, 
	chain_id INTEGER NOT NULL, 
	safe VARCHAR NOT NULL, 
	signatures VARCHAR NOT NULL, 
	content BYTEA NOT NULL, 
	source_path VARCHAR NOT NULL, 
	approved_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	CONSTRAINT uq_policy_approval UNIQUE (chain_id, safe, policy_hash)
);
CREATE INDEX ix_governance_policy_approval_policy_hash ON governance_policy_approval (policy_hash);
CREATE TABLE market_signal_state (
	key VARCHAR NOT NULL, 
	level INTEGER, 
	ts INTEGER NOT NULL, 
	PRIMARY KEY (key)
);
CREATE TABLE market_tvl_sample (
	id SERIAL NOT NULL, 
	key VARCHAR NOT NULL, 
	ts INTEGER NOT NULL, 
	tvl_usd FLOAT NOT NULL, 
	source VARCHAR NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (key, ts)
);
CREATE INDEX ix_market_tvl_sample_key ON market_tvl_sample (key);
CREATE INDEX ix_market_tvl_sample_ts ON market_tvl_sample (ts);
CREATE TABLE position_snapshot (
	id SERIAL NOT NULL, 
	taken_at TIMESTAMP WITH TIME ZONE NOT NULL, 
	chain_id INTEGER NOT NULL, 
	position_manager VARCHAR NOT NULL, 
	token_id VARCHAR NOT NULL, 
	tick INTEGER NOT NULL, 
	sqrt_price_x96 VARCHAR NOT NULL, 
	liquidity VARCHAR NOT NULL, 
	amount0 VARCHAR NOT NULL, 
	amount1 VARCHAR NOT NULL, 
	fees0 VARCHAR NOT NULL, 
	fees1 VARCHAR NOT NULL, 
	in_range BOOLEAN NOT NULL, 
	price FLOAT NOT NULL, 
	value FLOAT NOT NULL, 
	fees_value FLOAT NOT NULL, 
	delta FLOAT NOT NULL, 
	gamma FLOAT NOT NULL, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_position_snapshot_taken_at ON position_snapshot (taken_at);
CREATE INDEX ix_position_snapshot_token_id ON position_snapshot (token_id);
CREATE TABLE watched_position (
	id SERIAL NOT NULL, 
	chain_id INTEGER NOT NULL, 
	position_manager VARCHAR NOT NULL, 
	token_id VARCHAR NOT NULL, 
	owner VARCHAR NOT NULL, 
	pool VARCHAR NOT NULL, 
	token0 VARCHAR NOT NULL, 
	token1 VARCHAR NOT NULL, 
	fee INTEGER NOT NULL, 
	tick_lower INTEGER NOT NULL, 
	tick_upper INTEGER NOT NULL, 
	first_seen TIMESTAMP WITH TIME ZONE NOT NULL, 
	last_seen TIMESTAMP WITH TIME ZONE NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (chain_id, position_manager, token_id)
);
