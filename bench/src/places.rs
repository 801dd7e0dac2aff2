//! Where the benchmark's stores are, and who must receive each alert.
//!
//! Stores are scattered around real metropolitan centres, weighted roughly
//! by population, from a fixed seed: every run places the same stores. The
//! exact recipients of an alert are found by brute force over every store,
//! with the rule of docs/API.md, so that the server's spatial index is checked
//! against a computation that shares nothing with it.

use geo::{Destination, Distance, Haversine, Point};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Stores' radii of interest, in turn: the pledge default (25 km) and two
/// others, so that the check tells a store's radius from an alert's.
const STORE_RADII_KM: [f64; 3] = [25.0, 10.0, 50.0];

/// The largest radius any benchmark store has.
pub const LARGEST_STORE_RADIUS_KM: f64 = 50.0;

/// The radius of interest of store `index`.
pub fn store_radius_km(index: usize) -> f64 {
    STORE_RADII_KM[index % STORE_RADII_KM.len()]
}

/// City centres (lat, lon) and their weight (roughly metro population, millions).
const CITIES: &[(&str, f64, f64, f64)] = &[
    ("New York", 40.7128, -74.0060, 19.5),
    ("Los Angeles", 34.0522, -118.2437, 12.8),
    ("Chicago", 41.8781, -87.6298, 9.4),
    ("Dallas", 32.7767, -96.7970, 7.9),
    ("Houston", 29.7604, -95.3698, 7.3),
    ("Washington", 38.9072, -77.0369, 6.3),
    ("Philadelphia", 39.9526, -75.1652, 6.2),
    ("Miami", 25.7617, -80.1918, 6.1),
    ("Atlanta", 33.7490, -84.3880, 6.2),
    ("Boston", 42.3601, -71.0589, 4.9),
    ("Phoenix", 33.4484, -112.0740, 5.0),
    ("San Francisco", 37.7749, -122.4194, 4.7),
    ("Detroit", 42.3314, -83.0458, 4.3),
    ("Seattle", 47.6062, -122.3321, 4.0),
    ("Minneapolis", 44.9778, -93.2650, 3.7),
    ("San Diego", 32.7157, -117.1611, 3.3),
    ("Tampa", 27.9506, -82.4572, 3.3),
    ("Denver", 39.7392, -104.9903, 3.0),
    ("St. Louis", 38.6270, -90.1994, 2.8),
    ("Baltimore", 39.2904, -76.6122, 2.8),
    ("Las Vegas", 36.1699, -115.1398, 2.3),
    ("Portland", 45.5152, -122.6784, 2.5),
    ("Charlotte", 35.2271, -80.8431, 2.7),
    ("Orlando", 28.5383, -81.3792, 2.7),
];

/// How far stores spread around a centre: the mean distance, in km.
const SPREAD_KM: f64 = 12.0;

#[derive(Debug, Clone, Copy)]
pub struct Site {
    pub lat: f64,
    pub lon: f64,
}

impl Site {
    pub fn distance_km(self, other: Site) -> f64 {
        Haversine.distance(
            Point::new(self.lon, self.lat),
            Point::new(other.lon, other.lat),
        ) / 1000.0
    }
}

/// The same `count` store sites for the same seed, every run.
pub fn store_sites(count: usize, seed: u64) -> Vec<Site> {
    let mut rng = StdRng::seed_from_u64(seed);
    let total: f64 = CITIES.iter().map(|c| c.3).sum();
    (0..count)
        .map(|_| {
            let mut pick = rng.random::<f64>() * total;
            let city = CITIES
                .iter()
                .find(|c| {
                    pick -= c.3;
                    pick <= 0.0
                })
                .unwrap_or(&CITIES[0]);
            scatter(
                &mut rng,
                Site {
                    lat: city.1,
                    lon: city.2,
                },
            )
        })
        .collect()
}

/// Where a store's incident happened: up to `km` from the store (a crew
/// seen down the street), so that the author is not always the centre.
pub fn near(site: Site, km: f64, rng: &mut StdRng) -> Site {
    let bearing = rng.random::<f64>() * 360.0;
    let to = Haversine.destination(
        Point::new(site.lon, site.lat),
        bearing,
        rng.random::<f64>() * km * 1000.0,
    );
    Site {
        lat: to.y(),
        lon: to.x(),
    }
}

/// A point around `centre`: uniform bearing, exponential distance.
fn scatter(rng: &mut StdRng, centre: Site) -> Site {
    let distance_m = -SPREAD_KM * 1000.0 * (1.0 - rng.random::<f64>()).ln();
    let bearing = rng.random::<f64>() * 360.0;
    let to = Haversine.destination(Point::new(centre.lon, centre.lat), bearing, distance_m);
    Site {
        lat: to.y(),
        lon: to.x(),
    }
}

/// The rule of docs/API.md: a store at distance `d` receives an alert when
/// `d <= alert radius` or `d <= store radius`; its author always does.
pub fn receives(store: Site, store_radius_km: f64, alert: Site, alert_radius_km: f64) -> bool {
    let d = store.distance_km(alert);
    d <= alert_radius_km || d <= store_radius_km
}

/// Indexes (into `stores`) of every store that must receive an alert posted
/// by `author` at `at` with `radius_km`, by brute force.
pub fn recipients(stores: &[Site], author: usize, at: Site, radius_km: f64) -> Vec<u32> {
    stores
        .iter()
        .enumerate()
        .filter(|(i, s)| *i == author || receives(**s, store_radius_km(*i), at, radius_km))
        .map(|(i, _)| i as u32)
        .collect()
}

/// The geographic cells of the NATS reference: a fixed grid in degrees.
pub const CELL_DEGREES: f64 = 0.25;

pub fn cell_of(site: Site) -> (i32, i32) {
    (
        (site.lat / CELL_DEGREES).floor() as i32,
        (site.lon / CELL_DEGREES).floor() as i32,
    )
}

pub fn cell_subject((lat, lon): (i32, i32)) -> String {
    format!("p4p.cell.{lat}.{lon}")
}

/// Every cell a circle of `reach_km` around `at` touches (a superset:
/// the circle's bounding box in degrees, with a margin).
pub fn cells_reached(at: Site, reach_km: f64) -> Vec<(i32, i32)> {
    let dlat = reach_km / 110.574 * 1.01;
    let dlon = reach_km / (111.320 * at.lat.to_radians().cos().max(0.01)) * 1.01;
    let (lat0, lon0) = cell_of(Site {
        lat: at.lat - dlat,
        lon: at.lon - dlon,
    });
    let (lat1, lon1) = cell_of(Site {
        lat: at.lat + dlat,
        lon: at.lon + dlon,
    });
    (lat0..=lat1)
        .flat_map(|lat| (lon0..=lon1).map(move |lon| (lat, lon)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_places_the_same_stores() {
        let a = store_sites(100, 7);
        let b = store_sites(100, 7);
        assert!(a
            .iter()
            .zip(&b)
            .all(|(x, y)| x.lat == y.lat && x.lon == y.lon));
    }

    #[test]
    fn stores_sit_near_their_cities() {
        for site in store_sites(1_000, 1) {
            let nearest = CITIES
                .iter()
                .map(|c| site.distance_km(Site { lat: c.1, lon: c.2 }))
                .fold(f64::INFINITY, f64::min);
            assert!(nearest < 200.0, "{site:?} is {nearest} km from any city");
        }
    }

    #[test]
    fn every_recipient_sits_in_a_cell_the_alert_reaches() {
        let stores = store_sites(2_000, 3);
        for (author, at) in stores.iter().enumerate().take(50) {
            let cells = cells_reached(*at, 50.0_f64.max(LARGEST_STORE_RADIUS_KM));
            for i in recipients(&stores, author, *at, 50.0) {
                assert!(cells.contains(&cell_of(stores[i as usize])));
            }
        }
    }

    #[test]
    fn the_rule_is_either_radius() {
        let a = Site {
            lat: 40.7128,
            lon: -74.0060,
        };
        let newark = Site {
            lat: 40.7357,
            lon: -74.1724,
        }; // 14 km
        assert!(receives(newark, 25.0, a, 5.0));
        assert!(receives(newark, 5.0, a, 25.0));
        assert!(!receives(newark, 5.0, a, 5.0));
    }
}
