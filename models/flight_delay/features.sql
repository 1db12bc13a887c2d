-- One row per scheduled flight of the days in `flights`: what is known before departure.
-- `history` holds the outcomes of the 7 days before each day, with the model's label.
WITH labelled AS (
    SELECT flight_date, carrier, origin, dest, label AS late, dep_delay
    FROM history
    WHERE label IS NOT NULL
),
days AS (SELECT DISTINCT flight_date AS day FROM flights),
recent AS (
    SELECT d.day, l.*
    FROM days d JOIN labelled l
      ON l.flight_date >= d.day - {history_days} AND l.flight_date < d.day
),
by_carrier AS (
    SELECT day, carrier, avg(late) AS carrier_late_rate_7d,
           avg(dep_delay) AS carrier_dep_delay_7d, count(*) AS carrier_flights_7d
    FROM recent GROUP BY day, carrier
),
by_origin AS (
    SELECT day, origin, avg(late) AS origin_late_rate_7d, avg(dep_delay) AS origin_dep_delay_7d
    FROM recent GROUP BY day, origin
),
by_route AS (
    SELECT day, origin, dest, avg(late) AS route_late_rate_7d, count(*) AS route_flights_7d
    FROM recent GROUP BY day, origin, dest
),
congestion AS (
    SELECT flight_date, origin, dep_hour, count(*) AS origin_hour_flights
    FROM flights GROUP BY flight_date, origin, dep_hour
)
SELECT
    f.flight_date, f.carrier, f.flight, f.origin, f.dest, f.tailnum,
    f.dep_hour,
    (f.sched_dep_time // 100) * 60 + f.sched_dep_time % 100 AS sched_dep_minute,
    (f.sched_arr_time // 100) * 60 + f.sched_arr_time % 100 AS sched_arr_minute,
    isodow(f.flight_date) AS day_of_week,
    f.distance,
    year(f.flight_date) - p.year AS plane_age, p.seats, p.engines,
    w.temp, w.dewp, w.humid, w.wind_dir, w.wind_speed, w.wind_gust, w.precip, w.pressure,
    w.visib,
    c.origin_hour_flights,
    bc.carrier_late_rate_7d, bc.carrier_dep_delay_7d, bc.carrier_flights_7d,
    bo.origin_late_rate_7d, bo.origin_dep_delay_7d,
    br.route_late_rate_7d, br.route_flights_7d
FROM flights f
LEFT JOIN planes p ON p.tailnum = f.tailnum
LEFT JOIN weather w
    ON w.origin = f.origin AND w.obs_date = f.flight_date AND w.hour = f.dep_hour
LEFT JOIN congestion c
    ON c.flight_date = f.flight_date AND c.origin = f.origin AND c.dep_hour = f.dep_hour
LEFT JOIN by_carrier bc ON bc.day = f.flight_date AND bc.carrier = f.carrier
LEFT JOIN by_origin bo ON bo.day = f.flight_date AND bo.origin = f.origin
LEFT JOIN by_route br ON br.day = f.flight_date AND br.origin = f.origin AND br.dest = f.dest
ORDER BY f.flight_date, f.carrier, f.flight, f.origin
