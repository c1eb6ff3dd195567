// The values the server shares with the page (server/web/contract.py), embedded in index.html.

const contract = JSON.parse(document.getElementById('contract').textContent);

// A source's states by name: STATE.LOST === 'lost' (server/audio/source.py, SourceState).
export const STATE = Object.freeze(contract.source_states);
const KNOWN_STATES = new Set(Object.values(STATE));
export const isKnownState = (state) => KNOWN_STATES.has(state);
// States in which a source is still read or retried: it can be stopped.
export const LIVE_STATES = new Set(contract.live_states);
export const TOP_TAGS = contract.top_tags;
// Alert rules' defaults by type: {silence: {for, threshold_db}, talk: {for}, ...}.
export const RULE_DEFAULTS = contract.rule_defaults;
// The pseudo-genre of windows and segments below the model's confidence threshold.
export const UNCERTAIN = contract.uncertain;
// The picker's tabs: [{kind, tab, panel?, field?, label?, placeholder?, hint?, pattern?, prompt?}, ...].
export const SOURCE_KINDS = contract.source_kinds;
