select {{ function('safe_bigint_trimmed').include(database=false) }}(
    {{ function('trim_ws').include(database=false) }}(p_value)
)
