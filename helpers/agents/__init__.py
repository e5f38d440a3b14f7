"""Agents (notebooks 02-07): the tool-calling loop, routing, memory, guardrails, Microsoft Agent Framework,
the agent simulations of notebook 02. The names below load their module on first use."""

from helpers.face import lazy_face

__getattr__, __dir__, __all__ = lazy_face(__name__, {
    "loop": ["Agent"],
    "toolbox": ["ToolArgumentError", "ToolBox", "ToolExecutionError", "shop_copy", "build_shop_db", "shop_db_path"],
    "intents": ["NO_TOOL", "KEYWORD_RULES", "keyword_intent"],
    "router": ["Call", "EscalationPolicy", "HybridRouter", "INTENT_TO_SPECIALIST", "IntentRouter", "SPECIALISTS",
               "Prices", "check_mapping", "decision_confidence", "escalation_target", "failure_signals",
               "make_workload", "select_tier", "summarize", "tier_files", "tier_runtimes"],
    "memory": ["ContextBudgetError", "ConversationStore", "StoreError", "UnknownSessionError", "brief_summary",
               "count_tokens", "extract_facts", "fit_to_budget", "load_tokenizer", "message_tokens", "split_turns",
               "with_customer_id"],
    "guardrails": ["AuditLog", "Guardrails", "InjectionDefence", "InputPolicy", "OutputPolicy", "Session",
                   "TokenSigner", "ToolPermissions", "skeleton", "verify_log"],
    "layers": ["LAYERS", "LayeredGuard", "RequestedOnly", "SIDE_EFFECTING", "detect", "keyword_detect", "separate"],
    "guard_eval": ["CONFIGS", "CachedRuntime", "ObedientModel", "format_table", "load_guard_cases", "measure"],
    "maf": ["answered_by", "chat_client", "guard_middleware", "in_memory_telemetry", "reply_check", "shop_functions"],
    "evaluate": ["agent_cases", "eval_agent", "format_agent_table", "load_agent_cases", "run_agent_eval"],
    "simulations": ["Bandit", "EpsilonGreedy", "GoalAgent", "HysteresisThermostat", "MapVacuum", "MOVES",
                    "RandomChooser", "ReflexVacuum", "Room", "UCB1", "VacuumPercept", "VacuumWorld", "astar_path",
                    "bfs_expanded", "bfs_path", "incremental_update", "neighbours", "perceive_reason_act",
                    "random_grid", "reflex_thermostat", "run_bandit", "run_thermostat", "run_vacuum", "slm_reasoner",
                    "update_map"],
})
