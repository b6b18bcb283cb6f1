select {{ function('safe_numeric_trimmed').include(database=false) }}(
    {{ function('trim_ws').include(database=false) }}(p_value)
)
